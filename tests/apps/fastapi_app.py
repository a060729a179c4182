"""FastAPI under uvicorn, for the README's "Your app behind candado": which scheme and client
address the app sees depends on uvicorn's --proxy-headers / --forwarded-allow-ips."""
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
def index(request: Request):
    return f"url={request.url_for('index')} client={request.client.host}"
