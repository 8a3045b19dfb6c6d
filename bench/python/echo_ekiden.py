"""The README's echo server (examples/python/echo.py) with TCP_NODELAY, as the other
benchmark servers set it, and a client's reset ending only its own connection:
python echo_ekiden.py PORT [WORKERS|ct] (ct: a current-thread runtime, the reactor
on the Python thread)."""
import signal
import sys

import ekiden


async def handle(stream: ekiden.TcpStream) -> None:
    stream.set_nodelay()
    async with stream:
        try:
            while data := await stream.read(65536):
                await stream.write_all(data)
        except ConnectionError:
            # loadgen resets connections when it stops: one client's reset must
            # not end the TaskGroup (asyncio logs it and goes on).
            pass


async def main(port: int) -> None:
    listener = await ekiden.TcpListener.bind(("127.0.0.1", port))
    print("listening on", listener.local_addr, flush=True)
    async with ekiden.TaskGroup() as tg:
        async for stream in listener:
            tg.spawn(handle(stream))


if __name__ == "__main__":
    # A background job of a non-interactive shell starts with SIGINT ignored
    # (and Python then installs no handler): put Python's default back, so that
    # the bench script's Ctrl-C (SIGINT) stops the server as it would a user's.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mode = sys.argv[2] if len(sys.argv) > 2 else "1"
    if mode == "ct":
        ekiden.run(main(int(sys.argv[1])), current_thread=True)
    else:
        ekiden.run(main(int(sys.argv[1])), workers=int(mode))
