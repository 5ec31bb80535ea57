// SIGUSR1 / SIGTERM (Slurm's warning before the time limit, scancel, preemption) set a
// flag; the ranks agree on it at the next step boundary (it travels in the per-step
// all-reduce), then rank 0 checkpoints and every rank exits with kExitRequeue.
#pragma once

namespace ddpm {

// Call first in main, before MPI_Init or any thread starts.
void install_stop_handlers();
// Which signal set the flag (0: none), for the log line.
int stop_signal();

}  // namespace ddpm
