#include "trellis/workflow_graph.hpp"

#include "trellis/detail/canvas_fields.hpp"

#include <algorithm>
#include <deque>
#include <string>
#include <tuple>
#include <utility>

namespace trellis::detail {

namespace {

/// The task a map over its input calls, for its error.
std::string spec_task(const canvas& c) {
  const auto& inner = c.fanout()->as_map().begin()->second;
  return inner.as_map().at("task").as_string();
}

}  // namespace

// Activation and completion run through an explicit queue instead of
// recursion: restoring a long chain completes one step after another, and a
// chain of a million steps must not need a million stack frames.
struct workflow_graph::pending_step {
  enum class op : std::uint8_t { activate, complete } what;
  node_id id;
  std::optional<value> input;
};

workflow_graph::workflow_graph(canvas c, std::string workflow_id)
    : canvas_(std::move(c)), workflow_id_(std::move(workflow_id)) {
  nodes_.reserve(canvas_.task_count() * 2 + 1);
  expand(canvas_, -1, 0);
}

node_id workflow_graph::expand(const canvas& c, node_id parent, std::int32_t position) {
  auto id = expand_main(c, parent, position);
  if (!c.has_callbacks()) {
    return id;
  }
  // After the node's own subtree, links first: ids stay depth-first, so a
  // restore that expands the same canvas gets the same ids.
  std::vector<node_id> links;
  std::vector<node_id> link_errors;
  for (auto [list, out, role] : {std::tuple{&c.links(), &links, callback_kind::link},
                                 std::tuple{&c.link_errors(), &link_errors, callback_kind::link_error}}) {
    std::int32_t pos = 0;
    for (const auto& cb : *list) {
      auto root = expand(cb, id, pos++);
      nodes_[static_cast<std::size_t>(root)].callback = role;
      out->push_back(root);
    }
  }
  nodes_[static_cast<std::size_t>(id)].links = std::move(links);
  nodes_[static_cast<std::size_t>(id)].link_errors = std::move(link_errors);
  return id;
}

node_id workflow_graph::expand_main(const canvas& c, node_id parent, std::int32_t position) {
  auto id = static_cast<node_id>(nodes_.size());
  nodes_.emplace_back();
  nodes_.back().kind = c.type();
  nodes_.back().parent = parent;
  nodes_.back().position = position;
  if (c.is_task()) {
    nodes_.back().sig = &c.sig();
    return id;
  }
  if (c.over_input()) {
    nodes_.back().over_input = std::make_shared<const canvas>(c);
    return id;
  }
  std::vector<node_id> children;
  children.reserve(c.children().size() + 1);
  std::int32_t pos = 0;
  for (const auto& child : c.children()) {
    children.push_back(expand(child, id, pos++));
  }
  if (c.type() == canvas::kind::chord) {
    children.push_back(expand(c.body(), id, pos));
  }
  // `nodes_` may have grown (and moved) while expanding the children.
  nodes_[static_cast<std::size_t>(id)].children = std::move(children);
  return id;
}

graph_effects workflow_graph::start(const std::function<std::optional<known_outcome>(node_id)>& known) {
  known_ = known;
  graph_effects fx;
  activate(0, std::nullopt, fx);
  known_ = nullptr;
  return fx;
}

void workflow_graph::activate(node_id first, std::optional<value> first_input, graph_effects& fx) {
  std::deque<pending_step> queue;
  queue.push_back({pending_step::op::activate, first, std::move(first_input)});
  run(queue, fx);
}

void workflow_graph::complete(node_id id, graph_effects& fx) {
  std::deque<pending_step> queue;
  queue.push_back({pending_step::op::complete, id, std::nullopt});
  run(queue, fx);
}

void workflow_graph::run(std::deque<pending_step>& queue, graph_effects& fx) {
  while (!queue.empty()) {
    auto step = std::move(queue.front());
    queue.pop_front();
    auto& n = nodes_[static_cast<std::size_t>(step.id)];
    if (step.what == pending_step::op::complete) {
      if (!n.links.empty() || !n.link_errors.empty()) {
        decide_callbacks(step.id, queue, fx);
      }
      if (n.callback != callback_kind::none) {
        // A callback ended: it has no effect on the node it hangs on.
        --running_callbacks_;
        settle(fx);
        continue;
      }
      if (n.parent < 0) {
        settle(fx);
        continue;
      }
      auto& p = nodes_[static_cast<std::size_t>(n.parent)];
      auto parent_id = n.parent;
      auto done = [&](node_state s) {
        p.state = s;
        queue.push_back({pending_step::op::complete, parent_id, std::nullopt});
      };
      if (p.replacement == step.id) {
        // A replacement ended: the node it replaced ends as it did, unless
        // that node was revoked (and so completed) meanwhile.
        if (!is_terminal(p.state)) {
          p.result = n.result;
          p.error = n.error;
          done(n.state);
          if (p.kind == canvas::kind::task) {
            fx.replaced_done.push_back(parent_id);
          }
        }
        continue;
      }
      switch (p.kind) {
        case canvas::kind::chain: {
          if (n.state != node_state::success) {
            p.error = n.error;
            done(n.state);
          } else if (static_cast<std::size_t>(n.position) + 1 == p.children.size()) {
            p.result = n.result;
            done(node_state::success);
          } else {
            queue.push_back(
                {pending_step::op::activate, p.children[static_cast<std::size_t>(n.position) + 1], n.result});
          }
          break;
        }
        case canvas::kind::group:
        case canvas::kind::chord: {
          auto header_size = p.children.size() - (p.kind == canvas::kind::chord ? 1 : 0);
          if (static_cast<std::size_t>(n.position) == header_size) {
            // The chord body finished: the chord ends as its body ends.
            p.result = n.result;
            p.error = n.error;
            done(n.state);
            break;
          }
          if (static_cast<std::size_t>(++p.finished) < header_size) {
            break;
          }
          // Every member is terminal. As in Celery, the first failure in call
          // order (not in time) decides, so the outcome is deterministic.
          value::array results;
          results.reserve(header_size);
          const graph_node* failed = nullptr;
          for (std::size_t i = 0; i < header_size; ++i) {
            const auto& member = nodes_[static_cast<std::size_t>(p.children[i])];
            if (member.state != node_state::success) {
              failed = &member;
              break;
            }
            results.push_back(member.result);
          }
          if (failed != nullptr) {
            p.error = failed->error;
            // Celery: a revoked header member fails the chord (ChordError);
            // a group simply ends as its first unsuccessful member.
            bool chord_fails = p.kind == canvas::kind::chord && failed->state == node_state::revoked;
            done(chord_fails ? node_state::failure : failed->state);
          } else if (p.kind == canvas::kind::group) {
            p.result = value(std::move(results));
            done(node_state::success);
          } else {
            queue.push_back({pending_step::op::activate, p.children.back(), value(std::move(results))});
          }
          break;
        }
        case canvas::kind::task:
          break;  // a leaf's only child is its replacement, handled above
      }
      continue;
    }

    // op::activate
    if (n.kind == canvas::kind::task && n.state == node_state::revoked) {
      // Revoked while it waited for the steps before it: it never runs.
      queue.push_back({pending_step::op::complete, step.id, std::nullopt});
      continue;
    }
    n.state = node_state::received;
    if (n.over_input && n.replacement < 0) {
      // A map over its input: its members are made now, from the input.
      auto members = step.input ? expand_over_input(*n.over_input, *step.input)
                                : expected<canvas>{error{errc::invalid_workflow, "map_input_not_a_list: no input"}};
      if (!members) {
        n.state = node_state::failure;
        n.error = value(value::map{{"type", "map_input_not_a_list"},
                                   {"message", members.error().message()},
                                   {"task", spec_task(*n.over_input)},
                                   {"node", step.id}});
        queue.push_back({pending_step::op::complete, step.id, std::nullopt});
        continue;
      }
      auto before = nodes_.size();
      attach_replacement(step.id, std::move(*members));
      fx.added_nodes += nodes_.size() - before;
      fx.expanded.push_back(step.id);
    }
    if (nodes_[static_cast<std::size_t>(step.id)].replacement >= 0) {
      // Replaced (live, or attached by a restore): what runs is the
      // replacement, with no input.
      auto& replaced = nodes_[static_cast<std::size_t>(step.id)];
      replaced.input = std::move(step.input);
      replaced.state = node_state::started;
      queue.push_back({pending_step::op::activate, replaced.replacement, std::nullopt});
      continue;
    }
    switch (n.kind) {
      case canvas::kind::task: {
        n.input = std::move(step.input);
        if (known_) {
          if (auto k = known_(step.id); k) {
            n.attempt = k->attempt;
            n.retry_base = k->retry_base;
            if (is_terminal(k->state)) {
              n.state = k->state;
              n.result = std::move(k->result);
              n.error = std::move(k->error);
              fx.replayed.push_back(step.id);
              queue.push_back({pending_step::op::complete, step.id, std::nullopt});
              break;
            }
          }
        }
        fx.ready.push_back(step.id);
        break;
      }
      case canvas::kind::chain:
        queue.push_back({pending_step::op::activate, n.children.front(), std::move(step.input)});
        break;
      case canvas::kind::group:
      case canvas::kind::chord: {
        auto header_size = n.children.size() - (n.kind == canvas::kind::chord ? 1 : 0);
        if (header_size == 0) {
          if (n.kind == canvas::kind::group) {
            n.result = value::array{};
            n.state = node_state::success;
            queue.push_back({pending_step::op::complete, step.id, std::nullopt});
          } else {
            // Celery: a chord with an empty header calls its body with [].
            queue.push_back({pending_step::op::activate, n.children.back(), value::array{}});
          }
          break;
        }
        // Every member gets the same previous result (Celery passes a chain's
        // previous result to each member of a following group).
        for (std::size_t i = 0; i < header_size; ++i) {
          queue.push_back({pending_step::op::activate, n.children[i], step.input});
        }
        break;
      }
    }
  }
}

void workflow_graph::decide_callbacks(node_id id, std::deque<pending_step>& queue, graph_effects& fx) {
  // Copies: `skip` and the queue must not hold references into `nodes_`.
  auto state = nodes_[static_cast<std::size_t>(id)].state;
  auto links = nodes_[static_cast<std::size_t>(id)].links;
  auto link_errors = nodes_[static_cast<std::size_t>(id)].link_errors;
  auto ended = "node " + std::to_string(id) + " ended " + std::string{to_string(state)};
  std::optional<value> input;
  if (state == node_state::success) {
    input = nodes_[static_cast<std::size_t>(id)].result;
  } else if (state == node_state::failure) {
    const auto& err = nodes_[static_cast<std::size_t>(id)].error;
    value::map e = err.is_map() ? err.as_map() : value::map{{"message", err}};
    e["workflow"] = workflow_id_;
    input = value(std::move(e));
  }
  auto& run_now = state == node_state::success ? links : link_errors;
  auto& not_now = state == node_state::success ? link_errors : links;
  if (state == node_state::revoked) {
    // A revoked node runs neither: revoking is asking for nothing more.
    not_now.insert(not_now.end(), run_now.begin(), run_now.end());
    run_now.clear();
  }
  for (auto cb : not_now) {
    skip(cb, ended, fx);
  }
  for (auto cb : run_now) {
    ++running_callbacks_;
    queue.push_back({pending_step::op::activate, cb, input});
  }
}

void workflow_graph::skip(node_id id, const std::string& why, graph_effects& fx) {
  for (auto at : subtree(id)) {
    auto& n = nodes_[static_cast<std::size_t>(at)];
    if (is_terminal(n.state)) {
      continue;
    }
    n.state = node_state::revoked;
    value::map e{{"type", callback_not_run}, {"message", "callback not run: " + why}, {"node", at}};
    if (n.kind == canvas::kind::task && n.sig != nullptr) {
      e["task"] = n.sig->task();
      fx.skipped.push_back(at);
    }
    n.error = value(std::move(e));
  }
}

void workflow_graph::settle(graph_effects& fx) {
  if (settled_ || !is_terminal(nodes_.front().state) || running_callbacks_ > 0) {
    return;
  }
  // Nothing runs any more, so the callbacks still pending hang on nodes that
  // will never end (the steps after a failure in a chain): they never run.
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].callback != callback_kind::none && nodes_[i].state == node_state::pending) {
      skip(static_cast<node_id>(i), "the workflow ended before node " + std::to_string(nodes_[i].parent) + " did",
           fx);
    }
  }
  settled_ = true;
  fx.finished = true;
}

apply_result workflow_graph::check_outcome(node_id leaf, std::int32_t attempt) const {
  if (leaf < 0 || static_cast<std::size_t>(leaf) >= nodes_.size() ||
      nodes_[static_cast<std::size_t>(leaf)].kind != canvas::kind::task) {
    return apply_result::unknown_node;
  }
  const auto& n = nodes_[static_cast<std::size_t>(leaf)];
  // The once-only guard: a terminal node never changes again, and only the
  // current attempt may finish it (a late outcome of an earlier attempt that
  // was presumed lost is a duplicate).
  if (is_terminal(n.state) || n.state == node_state::pending || n.attempt != attempt || n.replacement >= 0) {
    return apply_result::duplicate;
  }
  return apply_result::applied;
}

void workflow_graph::mark_dispatched(node_id leaf, std::int32_t attempt) {
  auto& n = nodes_.at(static_cast<std::size_t>(leaf));
  n.attempt = attempt;
  n.state = node_state::received;
}

apply_result workflow_graph::succeed(node_id leaf, std::int32_t attempt, value result, graph_effects& fx) {
  if (auto r = check_outcome(leaf, attempt); r != apply_result::applied) {
    return r;
  }
  auto& n = nodes_[static_cast<std::size_t>(leaf)];
  n.state = node_state::success;
  n.result = std::move(result);
  complete(leaf, fx);
  return apply_result::applied;
}

apply_result workflow_graph::fail(node_id leaf, std::int32_t attempt, value err, graph_effects& fx) {
  if (auto r = check_outcome(leaf, attempt); r != apply_result::applied) {
    return r;
  }
  auto& n = nodes_[static_cast<std::size_t>(leaf)];
  value::map e = err.is_map() ? err.as_map() : value::map{{"message", err}};
  e["task"] = n.sig->task();
  e["node"] = leaf;
  n.state = node_state::failure;
  n.error = value(std::move(e));
  complete(leaf, fx);
  return apply_result::applied;
}

apply_result workflow_graph::schedule_retry(node_id leaf, std::int32_t attempt) {
  if (auto r = check_outcome(leaf, attempt); r != apply_result::applied) {
    return r;
  }
  nodes_[static_cast<std::size_t>(leaf)].state = node_state::retry;
  return apply_result::applied;
}

apply_result workflow_graph::revoke(node_id id, const value& err, std::vector<node_id>& revoked,
                                    graph_effects& fx) {
  if (id < 0 || static_cast<std::size_t>(id) >= nodes_.size()) {
    return apply_result::unknown_node;
  }
  std::vector<node_id> to_complete;
  for (auto leaf : subtree(id)) {
    auto& n = nodes_[static_cast<std::size_t>(leaf)];
    if (n.kind != canvas::kind::task || is_terminal(n.state) || n.replacement >= 0) {
      // A replaced leaf ends when its replacement does, revoked below it.
      continue;
    }
    bool waiting = n.state == node_state::pending;
    value::map e = err.is_map() ? err.as_map() : value::map{{"message", err}};
    e["task"] = n.sig->task();
    e["node"] = leaf;
    n.state = node_state::revoked;
    n.error = value(std::move(e));
    revoked.push_back(leaf);
    if (!waiting) {
      to_complete.push_back(leaf);
    }
  }
  if (revoked.empty()) {
    return apply_result::duplicate;
  }
  // Each leaf completes once, and only leaves that were active: a chain
  // holds one active child at a time, so no composite completes twice.
  for (auto leaf : to_complete) {
    complete(leaf, fx);
  }
  return apply_result::applied;
}

std::vector<node_id> workflow_graph::subtree(node_id id) const {
  // Depth-first ids keep a canvas's own subtree contiguous, but a
  // replacement's nodes come after every other node, so walk the links.
  std::vector<node_id> out;
  std::vector<node_id> stack{id};
  while (!stack.empty()) {
    auto at = stack.back();
    stack.pop_back();
    out.push_back(at);
    const auto& n = nodes_[static_cast<std::size_t>(at)];
    if (n.replacement >= 0) {
      stack.push_back(n.replacement);
    }
    stack.insert(stack.end(), n.link_errors.rbegin(), n.link_errors.rend());
    stack.insert(stack.end(), n.links.rbegin(), n.links.rend());
    for (auto it = n.children.rbegin(); it != n.children.rend(); ++it) {
      stack.push_back(*it);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

node_id workflow_graph::attach_replacement(node_id leaf, canvas c) {
  if (leaf < 0 || static_cast<std::size_t>(leaf) >= nodes_.size()) {
    return -1;
  }
  const auto& n = nodes_[static_cast<std::size_t>(leaf)];
  if ((n.kind != canvas::kind::task && !n.over_input) || n.replacement >= 0) {
    return -1;
  }
  // The graph keeps the canvas: its leaves point at its signatures, which
  // canvas copies share, so the vector may move it freely.
  replacements_.emplace_back(leaf, std::move(c));
  auto root = expand(replacements_.back().second, leaf, 0);
  nodes_[static_cast<std::size_t>(leaf)].replacement = root;
  return root;
}

const canvas& workflow_graph::replacement_canvas(node_id id) const {
  // Asked right after the expansion, so the newest ones are looked at first.
  for (auto it = replacements_.rbegin(); it != replacements_.rend(); ++it) {
    if (it->first == id) {
      return it->second;
    }
  }
  throw usage_error("workflow_graph: node " + std::to_string(id) + " has no replacement");
}

apply_result workflow_graph::replace(node_id leaf, std::int32_t attempt, canvas c, graph_effects& fx) {
  if (auto r = check_outcome(leaf, attempt); r != apply_result::applied) {
    return r;
  }
  auto before = nodes_.size();
  auto root = attach_replacement(leaf, std::move(c));
  fx.added_nodes += nodes_.size() - before;
  nodes_[static_cast<std::size_t>(leaf)].state = node_state::started;
  activate(root, std::nullopt, fx);
  return apply_result::applied;
}

value::array workflow_graph::arguments_of(node_id leaf) const {
  const auto& n = nodes_.at(static_cast<std::size_t>(leaf));
  const auto& own = n.sig->args();
  if (!n.input || n.sig->options().immutable) {
    return own;
  }
  value::array args;
  args.reserve(own.size() + 1);
  args.push_back(*n.input);
  args.insert(args.end(), own.begin(), own.end());
  return args;
}

}  // namespace trellis::detail
