"""FastAPI under uvicorn for `candado doctor`: a page with an absolute link, a WebSocket echo
and Server-Sent Events. DOCTOR_BUFFER=1 adds a middleware that collects every response body
before sending it (as some logging or compression middlewares do), which holds events back.
Each request is appended to $DOCTOR_REQUEST_LOG.
"""
import asyncio
import os

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, StreamingResponse

app = FastAPI()


@app.get("/", response_class=HTMLResponse)
def index(request: Request):
    return f'<html><body><a href="{request.url_for("index")}">home</a> client={request.client.host}</body></html>'


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text)
    await websocket.close()


@app.get("/sse")
async def sse():
    async def events():
        for i in range(3):
            yield f"data: token {i}\n\n"
            await asyncio.sleep(0.4)

    return StreamingResponse(events(), media_type="text/event-stream")


class Buffering:
    """Collects the whole body, then sends it in one piece."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        start, chunks = None, []

        async def collect(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    await send(start)
                    await send({"type": "http.response.body", "body": b"".join(chunks)})

        await self.inner(scope, receive, collect)


class Counting:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        log = os.environ.get("DOCTOR_REQUEST_LOG")
        if log and scope["type"] in ("http", "websocket"):
            with open(log, "a") as f:
                f.write(f"{scope['client'][0]} {scope['path']}\n")
        return await self.inner(scope, receive, send)


inner = Buffering(app) if os.environ.get("DOCTOR_BUFFER") else app
asgi = Counting(inner)
