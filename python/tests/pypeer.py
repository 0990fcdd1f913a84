"""The Python peer of the tests, run as a separate process: the same commands and output as
the Rust peer (python/peer/src/main.rs), for Python <-> Python tests and kills.

    python pypeer.py frame-send NAME [--create] [--count N] [--max B] [--options JSON]
    python pypeer.py frame-recv NAME [--create] [--count N] [--max B] [--options JSON]
"""

import json
import sys

import shmchan


def pattern(i: int, max_len: int = 300) -> bytes:
    n = (i * 37) % (max_len + 1)
    return bytes((i + 7 * j) & 0xFF for j in range(n))


def main() -> None:
    cmd, name, *rest = sys.argv[1:]
    create, count, max_len, options = False, 1000, 300, {"capacity": 1 << 16}
    it = iter(rest)
    for flag in it:
        if flag == "--create":
            create = True
        elif flag == "--count":
            count = int(next(it))
        elif flag == "--max":
            max_len = int(next(it))
        elif flag == "--options":
            options.update(json.loads(next(it)))
        else:
            raise SystemExit(f"unknown flag {flag}")
    options.setdefault("open_timeout", 10.0)
    if cmd == "frame-send":
        cls = shmchan.FrameSender
        tx = cls.create(name, **options) if create else cls.open(name, **options)
        print("READY", flush=True)
        tx.wait_for_peer()
        for i in range(count):
            tx.send(pattern(i, max_len))
        tx.close()
        print(f"RESULT sent {count}", flush=True)
    elif cmd == "frame-recv":
        cls = shmchan.FrameReceiver
        rx = cls.create(name, **options) if create else cls.open(name, **options)
        print("READY", flush=True)
        n = bad = 0
        while n < count:
            try:
                data = rx.recv()
            except shmchan.Disconnected:
                break
            bad += data != pattern(n, max_len)
            n += 1
        rx.close()
        print(f"RESULT {n} {bad}", flush=True)
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
