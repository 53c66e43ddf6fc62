"""A WebSocket client from the standard library, for CI's shell checks: connects to
127.0.0.1:PORT at PATH with a User-Agent, writes "open", then each text frame it gets,
to FRAMES (one per line), and "closed" when the server closes the connection.

usage: python3 .ci/ws_client.py PORT PATH FRAMES
"""
import base64, os, socket, sys
port, path, frames = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
           "User-Agent: aws-cli-check/1.0\r\n\r\n").encode())
buffer = b""
while b"\r\n\r\n" not in buffer:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed during the handshake")
    buffer += chunk
head, buffer = buffer.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit(head.decode(errors="replace"))
def log(line):
    with open(frames, "a") as f:
        f.write(line + "\n")
log("open")
def take(n):
    global buffer
    while len(buffer) < n:
        chunk = s.recv(65536)
        if not chunk:
            log("closed")
            sys.exit(0)
        buffer += chunk
    data, buffer = buffer[:n], buffer[n:]
    return data
while True:
    first, second = take(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(take(2), "big")
    elif length == 127:
        length = int.from_bytes(take(8), "big")
    payload = take(length)
    opcode = first & 0x0F
    if opcode == 1:
        log(payload.decode())
    elif opcode == 8:
        log("closed")
        break
