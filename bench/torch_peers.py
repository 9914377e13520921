# PyTorch peer of bench/peers.bench.ts, driven over stdin/stdout so that its timings alternate
# with mixtape's and tfjs-wasm's in one sitting: each line names a workload, the reply is the
# milliseconds of one run of it. One thread (torch.set_num_threads(1)), float32, CPU.
#
#   lstm      nn.LSTM(256, 256) forward + backward on [35, 32, 256], every weight gradient read
#   overhead  1000 chained adds of [4] tensors from a leaf that requires grad, then backward
import sys
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
T, B, I, H = 35, 32, 256, 256
lstm = torch.nn.LSTM(I, H)
x = torch.randn(T, B, I)
leaf = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
step = torch.tensor([0.5, -0.25, 0.125, 1.0])


def run_lstm():
    lstm.zero_grad(set_to_none=True)
    out, _ = lstm(x)
    out.sum().backward()
    for p in lstm.parameters():
        p.grad.numpy().sum()


def run_overhead():
    leaf.grad = None
    y = leaf
    for _ in range(1000):
        y = y + step
    y.sum().backward()
    leaf.grad.numpy()


WORK = {'lstm': run_lstm, 'overhead': run_overhead}
print('ready', torch.__version__, torch.get_num_threads(), torch.backends.mkldnn.is_available(), flush=True)
for line in sys.stdin:
    name = line.strip()
    if not name:
        continue
    fn = WORK[name]
    t0 = time.perf_counter()
    fn()
    print(f'{(time.perf_counter() - t0) * 1000:.4f}', flush=True)
