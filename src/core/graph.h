// A network described once: the tensors it computes and the nodes that compute them,
// in forward order. Building the primitives, counting MACs, planning memory, forward
// and backward all walk this one list; a network (the U-Net of unet.h, an Inception)
// only says which nodes it has and which tensors each one reads.
//
// Backward runs the nodes in reverse. A tensor read by several nodes (a skip
// connection, the time embedding) has its gradient assigned by the first of its readers
// to run backward and accumulated by the others; the graph tells each node which
// (GradWrite), so no node keeps that bookkeeping itself. Gradients live only from their
// first write to their producer's backward: they are packed into a few shared arena
// slots planned once per batch size.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/arena.h"
#include "core/ops.h"

namespace ddpm {

// Everything a pass over a network needs besides the tensors themselves.
struct Pass {
  Ops* ops = nullptr;
  const float* params = nullptr;
  float* grads = nullptr;  // backward only
  uint64_t version = 0;    // changes whenever params change (weight-layout caches)
  int N = 0;
  bool training = false;   // dropout on
  DropoutKey dropout;      // seed, step, example_base; layer is set per block
  const float* param(int64_t offset) const { return params + offset; }
  float* grad(int64_t offset) const { return grads + offset; }
};

// How a backward writes a gradient: the first writer assigns, the others add.
enum class GradWrite { kAssign, kAdd };
inline bool accumulates(GradWrite w) { return w == GradWrite::kAdd; }

// The gradient a node's backward writes for one of its inputs; null data: not wanted
// (an input of the network such as the image or t).
struct InputGrad {
  float* data = nullptr;
  GradWrite write = GradWrite::kAssign;
};

// A tensor per image: [H, W, C] activations (NHWC) or [C] vectors (H = W = 1).
struct TensorShape {
  int H = 1, W = 1, C = 0;
  int64_t per_image() const { return static_cast<int64_t>(H) * W * C; }
};

// A view of a node's inputs (the graph keeps the arrays; nothing is allocated per call).
template <typename T>
struct Span {
  const T* data = nullptr;
  size_t size = 0;
  const T& operator[](size_t i) const { return data[i]; }
};

// What a plan keeps: forward only (sampling, evaluation: a node's inner activations
// die with its forward), everything backward needs (training), or training with each
// residual block's inner activations recomputed in its backward instead of kept
// (train.recompute: less memory for one more pass through the blocks' first halves).
enum class PlanMode { kForwardOnly, kTraining, kTrainingRecompute };
inline bool with_backward(PlanMode m) { return m != PlanMode::kForwardOnly; }

// One node of a network. Shapes are fixed at construction; N is the per-rank batch.
class Node {
 public:
  virtual ~Node() = default;
  // Builds the backend primitives for batch N (once per batch size and backend).
  virtual void build(Ops& ops, int N) {}
  // Takes the node's saved activations (arena.take; arena.shared where the mode lets
  // them die early) and, with_backward(mode), its backward temporaries (arena.shared,
  // kBlockScratch* slots). Runs twice: measure, hand out.
  virtual void plan(Arena& arena, int N, PlanMode mode) {}
  // out [N, shape] from in[i] [N, input shape i].
  virtual void forward(const Pass& ps, float* out, Span<const float*> in) = 0;
  // din[i] (assigned or added as din[i].write says; skipped when null) and the
  // parameter gradients (+=) from dout.
  virtual void backward(const Pass& ps, Span<InputGrad> din, const float* dout) = 0;
  virtual int64_t macs() const { return 0; }           // per image, forward
  virtual int64_t first_param() const { return -1; }   // lowest parameter offset; -1: none
};

class Graph {
 public:
  using TensorId = int;
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() { release(); }  // the arena goes back to the backend it came from
  // Called during backward with an offset: from there to the end of the flat buffer,
  // every parameter gradient is final (nodes are added, and so register their
  // parameters, in forward order, so this offset only decreases; the last call passes 0).
  using GradReadyFn = std::function<void(int64_t first_final_offset)>;

  // A tensor the caller supplies to forward(), in the order of input() calls.
  TensorId input(TensorShape shape);
  // Adds a node reading `inputs` and producing a tensor of `shape`; returns that tensor.
  TensorId add(std::unique_ptr<Node> node, std::vector<TensorId> inputs, TensorShape shape);
  // The tensors forward() writes into the caller's buffers, in this order. A graph
  // planned with backward has one output, which no node reads: backward() starts from
  // its gradient. A forward-only graph may have several, which later nodes may also
  // read (the Inception's pool_3 features feed its classifier).
  void set_outputs(std::vector<TensorId> outputs);
  void set_output(TensorId t) { set_outputs({t}); }
  TensorShape shape(TensorId t) const { return tensors_[t].shape; }

  // Lets a forward-only plan pack the tensors between nodes into shared slots by lifetime
  // (from the producer's forward to the last reader's) instead of keeping every one: for
  // a network evaluated on large batches (the Inception). Call before prepare().
  void share_forward_memory() { share_forward_memory_ = true; }

  int64_t macs_per_image() const;
  // Builds and plans for backend `ops` and batch N (with backward temporaries and
  // gradients unless kForwardOnly). Cheap when nothing changed.
  void prepare(Ops& ops, int N, PlanMode mode = PlanMode::kTraining);
  int batch() const { return N_; }
  // Floats of backend memory the plan holds (activations, temporaries, gradients).
  int64_t arena_floats() const { return arena_.floats(); }
  void release();  // gives the plan's memory back; prepare() plans again

  // outputs[i] [N, output shape i] from inputs[i] [N, input shape i], all backend memory.
  void forward(const Pass& ps, const float* const* inputs, float* const* outputs);
  void forward(const Pass& ps, const float* const* inputs, float* output) {
    float* const outputs[] = {output};
    forward(ps, inputs, outputs);
  }
  // Accumulates parameter gradients into ps.grads from d_output; inputs get none.
  void backward(const Pass& ps, const float* d_output, const GradReadyFn& ready = nullptr);

 private:
  struct Tensor {
    TensorShape shape;
    int producer = -1;          // node index; -1 for an input of the network
    int last_reader = -1;       // node index of the last reader in forward order
    float* data = nullptr;      // forward value (arena, or the caller's for in/outputs)
    int grad_slot = -1;         // arena shared slot of its gradient (-1: none)
    int forward_slot = -1;      // arena shared slot of its value when shared (-1: its own)
    float* grad = nullptr;
  };
  struct Entry {
    std::unique_ptr<Node> node;
    std::vector<TensorId> inputs;
    TensorId output = -1;
    // Per-pass argument arrays, sized once.
    std::vector<const float*> in_ptrs;
    std::vector<InputGrad> in_grads;
  };

  bool is_output(TensorId t) const;
  void plan(int N);
  void plan_gradient_slots(int N);
  void plan_forward_slots(int N);

  std::vector<Tensor> tensors_;
  std::vector<Entry> nodes_;
  std::vector<TensorId> inputs_, outputs_;

  Ops* ops_ = nullptr;
  int N_ = 0;
  PlanMode mode_ = PlanMode::kTraining;
  std::vector<int64_t> grad_slot_floats_;     // per gradient slot, per image x N
  std::vector<int64_t> forward_slot_floats_;  // per shared activation slot
  bool share_forward_memory_ = false;
  Arena arena_;
};

}  // namespace ddpm
