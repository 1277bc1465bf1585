"""Test doubles shipped with the package: `fake_gpu` (scripted fake NVML for tests and the
`--fake-gpu demo` of `asl gpu-watch`, `asl train` and `asl check-env`). No real code path uses
them; they are imported only when a fake is asked for."""
