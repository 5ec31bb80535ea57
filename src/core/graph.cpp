#include "core/graph.h"

#include <algorithm>

#include "core/common.h"

namespace ddpm {

Graph::TensorId Graph::input(TensorShape shape) {
  DDPM_CHECK(nodes_.empty(), "declare a graph's inputs before its nodes");
  Tensor t;
  t.shape = shape;
  tensors_.push_back(t);
  inputs_.push_back(static_cast<TensorId>(tensors_.size() - 1));
  return inputs_.back();
}

Graph::TensorId Graph::add(std::unique_ptr<Node> node, std::vector<TensorId> inputs, TensorShape shape) {
  const int index = static_cast<int>(nodes_.size());
  for (TensorId t : inputs) {
    DDPM_CHECK(t >= 0 && t < static_cast<TensorId>(tensors_.size()), "node ", index, " reads an unknown tensor");
    tensors_[t].last_reader = index;
  }
  Tensor out;
  out.shape = shape;
  out.producer = index;
  tensors_.push_back(out);
  Entry e;
  e.node = std::move(node);
  e.output = static_cast<TensorId>(tensors_.size() - 1);
  e.in_ptrs.assign(inputs.size(), nullptr);
  e.in_grads.assign(inputs.size(), InputGrad{});
  e.inputs = std::move(inputs);
  nodes_.push_back(std::move(e));
  return nodes_.back().output;
}

void Graph::set_outputs(std::vector<TensorId> outputs) {
  DDPM_CHECK(!outputs.empty(), "a graph needs an output");
  for (TensorId t : outputs) {
    DDPM_CHECK(t >= 0 && t < static_cast<TensorId>(tensors_.size()) && tensors_[t].producer >= 0,
               "an output must be a node's tensor");
  }
  outputs_ = std::move(outputs);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    DDPM_CHECK(is_output(static_cast<TensorId>(i)) || tensors_[i].last_reader >= 0,
               "a tensor of the graph is computed but never read");
  }
}

bool Graph::is_output(TensorId t) const {
  return std::find(outputs_.begin(), outputs_.end(), t) != outputs_.end();
}

int64_t Graph::macs_per_image() const {
  int64_t m = 0;
  for (const Entry& e : nodes_) m += e.node->macs();
  return m;
}

void Graph::prepare(Ops& ops, int N, PlanMode mode) {
  DDPM_CHECK(!outputs_.empty(), "Graph::set_outputs() was not called");
  DDPM_CHECK(!with_backward(mode) || (outputs_.size() == 1 && tensors_[outputs_[0]].last_reader < 0),
             "backward needs a graph with one output that no node reads");
  if (ops_ == &ops && N_ == N && mode_ == mode) return;
  DDPM_CHECK(N > 0, "batch must be positive");
  release();
  ops_ = &ops;
  N_ = N;
  mode_ = mode;
  for (Entry& e : nodes_) e.node->build(ops, N);
  if (with_backward(mode)) plan_gradient_slots(N);
  for (Tensor& t : tensors_) t.forward_slot = -1;
  if (!with_backward(mode) && share_forward_memory_) plan_forward_slots(N);
  arena_.begin_pass();
  plan(N);
  arena_.allocate(ops);
  plan(N);
}

void Graph::release() {
  if (ops_) arena_.release(*ops_);
  ops_ = nullptr;
  N_ = 0;
}

namespace {

// Arena slots handed out for lifetimes: take() gives the free slot that fits with the
// least room to spare, else the largest free one (grown to fit), else a new one.
class SlotPacker {
 public:
  int take(int64_t floats) {
    auto better = [&](int s, int best) {
      const bool fits = capacity_[s] >= floats, best_fits = capacity_[best] >= floats;
      if (fits != best_fits) return fits;
      return fits ? capacity_[s] < capacity_[best] : capacity_[s] > capacity_[best];
    };
    int best = -1;
    for (int s = 0; s < static_cast<int>(capacity_.size()); ++s) {
      if (!in_use_[s] && (best < 0 || better(s, best))) best = s;
    }
    if (best < 0) {
      best = static_cast<int>(capacity_.size());
      capacity_.push_back(0);
      in_use_.push_back(false);
    }
    capacity_[best] = std::max(capacity_[best], floats);
    in_use_[best] = true;
    return best;
  }
  void give_back(int slot) { in_use_[slot] = false; }
  const std::vector<int64_t>& capacity() const { return capacity_; }

 private:
  std::vector<int64_t> capacity_;
  std::vector<bool> in_use_;
};

}  // namespace

// Assigns every gradient a shared slot for its lifetime in the backward order: from its
// first write (its last reader's backward) to the end of its producer's backward. A
// free slot is reused, the smallest that fits first, so a chain of blocks ping-pongs
// between two slots and only the skip gradients waiting for their producers add more.
void Graph::plan_gradient_slots(int N) {
  SlotPacker slots;
  for (Tensor& t : tensors_) t.grad_slot = -1;
  for (int n = static_cast<int>(nodes_.size()) - 1; n >= 0; --n) {
    Entry& e = nodes_[n];
    for (size_t i = 0; i < e.inputs.size(); ++i) {
      Tensor& t = tensors_[e.inputs[i]];
      if (t.producer < 0) {  // an input of the network: no gradient
        e.in_grads[i].write = GradWrite::kAssign;
        continue;
      }
      const bool first = t.grad_slot < 0;
      if (first) t.grad_slot = slots.take(N * t.shape.per_image());
      e.in_grads[i].write = first ? GradWrite::kAssign : GradWrite::kAdd;
    }
    const Tensor& out = tensors_[e.output];
    if (out.grad_slot >= 0) slots.give_back(out.grad_slot);  // dead after this backward
  }
  grad_slot_floats_ = slots.capacity();
}

// The same packing of the values in forward order: a tensor holds its slot from its
// producer's forward, which takes it while the inputs still hold theirs (no output
// aliases an input), to its last reader's. The caller's outputs need none.
void Graph::plan_forward_slots(int N) {
  SlotPacker slots;
  for (Tensor& t : tensors_) t.forward_slot = -1;
  for (int n = 0; n < static_cast<int>(nodes_.size()); ++n) {
    const Entry& e = nodes_[n];
    Tensor& out = tensors_[e.output];
    if (!is_output(e.output)) out.forward_slot = slots.take(N * out.shape.per_image());
    for (TensorId i : e.inputs) {
      const Tensor& t = tensors_[i];
      if (t.forward_slot >= 0 && t.last_reader == n) slots.give_back(t.forward_slot);
    }
  }
  forward_slot_floats_ = slots.capacity();
}

void Graph::plan(int N) {
  arena_.begin_pass();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    Tensor& t = tensors_[i];
    const bool external = t.producer < 0 || is_output(static_cast<TensorId>(i));
    if (external) {
      t.data = nullptr;
    } else if (t.forward_slot >= 0) {
      t.data = arena_.shared(kFirstGraphSlot + t.forward_slot, forward_slot_floats_[t.forward_slot]);
    } else {
      t.data = arena_.take(N * t.shape.per_image());
    }
  }
  for (Entry& e : nodes_) e.node->plan(arena_, N, mode_);
  if (!with_backward(mode_)) return;
  std::vector<float*> slot(grad_slot_floats_.size());
  for (size_t s = 0; s < slot.size(); ++s) {
    slot[s] = arena_.shared(kFirstGraphSlot + static_cast<int>(s), grad_slot_floats_[s]);
  }
  for (Tensor& t : tensors_) t.grad = t.grad_slot >= 0 ? slot[t.grad_slot] : nullptr;
  for (Entry& e : nodes_) {
    for (size_t i = 0; i < e.inputs.size(); ++i) e.in_grads[i].data = tensors_[e.inputs[i]].grad;
  }
}

void Graph::forward(const Pass& ps, const float* const* inputs, float* const* outputs) {
  DDPM_CHECK(ps.N == N_ && ps.ops == ops_, "Graph::prepare() was not called for this batch");
  for (size_t i = 0; i < inputs_.size(); ++i) tensors_[inputs_[i]].data = const_cast<float*>(inputs[i]);
  for (size_t i = 0; i < outputs_.size(); ++i) tensors_[outputs_[i]].data = outputs[i];
  for (Entry& e : nodes_) {
    for (size_t i = 0; i < e.inputs.size(); ++i) e.in_ptrs[i] = tensors_[e.inputs[i]].data;
    e.node->forward(ps, tensors_[e.output].data, Span<const float*>{e.in_ptrs.data(), e.in_ptrs.size()});
  }
}

void Graph::backward(const Pass& ps, const float* d_output, const GradReadyFn& ready) {
  DDPM_CHECK(ps.N == N_ && ps.ops == ops_, "Graph::prepare() was not called for this batch");
  DDPM_CHECK(with_backward(mode_), "the graph was prepared for forward only");
  tensors_[outputs_[0]].grad = const_cast<float*>(d_output);
  for (int n = static_cast<int>(nodes_.size()) - 1; n >= 0; --n) {
    Entry& e = nodes_[n];
    e.node->backward(ps, Span<InputGrad>{e.in_grads.data(), e.in_grads.size()}, tensors_[e.output].grad);
    const int64_t first = e.node->first_param();
    if (ready && first >= 0) ready(first);
  }
}

}  // namespace ddpm
