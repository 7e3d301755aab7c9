# Findcnats: locate nats.c (libnats-dev). Debian 12's cnats-config.cmake
# references a static library the package does not ship, so find_package(cnats
# CONFIG) fails; this module finds the shared library and provides cnats::nats.
find_path(CNATS_INCLUDE_DIR NAMES nats/nats.h)
find_library(CNATS_LIBRARY NAMES nats)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(cnats REQUIRED_VARS CNATS_INCLUDE_DIR CNATS_LIBRARY)
if(cnats_FOUND AND NOT TARGET cnats::nats)
  add_library(cnats::nats UNKNOWN IMPORTED)
  set_target_properties(cnats::nats PROPERTIES
    IMPORTED_LOCATION "${CNATS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CNATS_INCLUDE_DIR}")
endif()
mark_as_advanced(CNATS_INCLUDE_DIR CNATS_LIBRARY)
