"""The echo server of examples/python/echo.py on asyncio streams, for comparison:
python echo_asyncio.py PORT [asyncio|uvloop]."""
import asyncio
import signal
import socket
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print("listening on", port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # A background job of a non-interactive shell starts with SIGINT ignored
    # (and Python then installs no handler): put Python's default back, so that
    # the bench script's Ctrl-C (SIGINT) stops the server as it would a user's.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    port = int(sys.argv[1])
    flavour = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    if flavour == "uvloop":
        import uvloop

        uvloop.run(main(port))
    else:
        asyncio.run(main(port))
