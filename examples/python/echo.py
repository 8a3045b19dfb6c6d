"""An echo server on Ekiden from Python: python echo.py [PORT] (default 7000)."""
import sys

import ekiden


async def handle(stream: ekiden.TcpStream) -> None:
    async with stream:
        try:
            while data := await stream.read(65536):
                await stream.write_all(data)
        except ConnectionError:  # a client's reset ends only its own connection
            pass


async def main(port: int) -> None:
    listener = await ekiden.TcpListener.bind(("127.0.0.1", port))
    print("listening on", listener.local_addr, flush=True)
    async with ekiden.TaskGroup() as tg:
        async for stream in listener:
            tg.spawn(handle(stream))


if __name__ == "__main__":
    ekiden.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 7000), workers=2)
