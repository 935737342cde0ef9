"""The search page: stdlib http.server on 127.0.0.1, one page, no asset from outside.

    GET /                 the page (inline CSS and JS): a search box, the ranked videos
                          with their moments on a timeline, an HTML5 player
    GET /api/search?q=..&top=10  {"videos": [...], "timings_ms": ..} or {"error": ".."}
    GET /videos/NAME      a file of the videos folder (Range requests, for seeking)

A click on a moment loads its video and starts it at the moment (`#t=start,end` and
`currentTime`). Errors (no such index, an empty query, a missing video) are answered as
JSON messages that the page shows; a traceback never reaches the browser.
"""

from __future__ import annotations

import html
import json
import mimetypes
import os
import sys
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from vlanet_tf.data.features import VIDEO_EXTENSIONS

HOST = "127.0.0.1"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>VLANet search</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#263238;color:#fff;padding:12px 20px;font-size:18px}
main{display:flex;gap:20px;padding:20px}
#left{flex:1;min-width:420px}#right{width:480px}
form{display:flex;gap:8px;margin-bottom:14px}
#q{flex:1;padding:8px;font-size:15px}button{padding:8px 14px}
#error{color:#b00020;font-weight:600;margin:8px 0}
#status{color:#555;font-size:13px;margin-bottom:8px}
ol{padding-left:22px}li.video{background:#fff;border-radius:6px;padding:8px 10px;
margin-bottom:10px;box-shadow:0 1px 2px #0002}
.head{display:flex;justify-content:space-between;font-size:14px}
.timeline{position:relative;height:34px;background:#e0e4e8;border-radius:3px;margin-top:6px}
.moment{position:absolute;height:14px;background:#1e88e5;opacity:.75;
border-radius:2px;cursor:pointer;color:#fff;font-size:10px;text-align:center;line-height:14px}
.moment.best{background:#e53935;opacity:.9}
video{width:100%;background:#000}
</style></head><body>
<header>VLANet &mdash; search a video collection</header>
<main><section id="left">
<form id="form"><input id="q" name="q" placeholder="describe a moment, e.g. a person opens the door"
 autocomplete="off"><button id="go" type="submit">Search</button></form>
<div id="error" role="alert">__ERROR__</div><div id="status"></div>
<ol id="results"></ol></section>
<section id="right"><video id="player" controls preload="metadata"></video>
<div id="now"></div></section></main>
<script>
const form=document.getElementById('form'),results=document.getElementById('results'),
 err=document.getElementById('error'),status=document.getElementById('status'),
 player=document.getElementById('player'),now=document.getElementById('now');
function play(v,m){const src='/videos/'+encodeURIComponent(v.video_id)+'#t='+m[0].toFixed(2)+','+m[1].toFixed(2);
 player.src=src;player.addEventListener('loadedmetadata',()=>{player.currentTime=m[0];},{once:true});
 player.play().catch(()=>{});now.textContent=v.video_id+': '+m[0].toFixed(1)+' s - '+m[1].toFixed(1)+' s';}
form.addEventListener('submit',async e=>{e.preventDefault();err.textContent='';results.innerHTML='';
 status.textContent='searching...';
 try{const r=await fetch('/api/search?q='+encodeURIComponent(document.getElementById('q').value));
  const d=await r.json();if(d.error){err.textContent=d.error;status.textContent='';return;}
  status.textContent=d.videos.length+' videos, '+d.candidates+' scored by the cascade, '+d.timings_ms.total.toFixed(1)+' ms';
  d.videos.forEach((v,i)=>{const li=document.createElement('li');li.className='video';li.dataset.video=v.video_id;
   const head=document.createElement('div');head.className='head';
   head.innerHTML='<b></b><span>c = '+v.similarity.toFixed(3)+' &middot; '+v.duration.toFixed(1)+' s</span>';
   head.querySelector('b').textContent=v.video_id;li.appendChild(head);
   const tl=document.createElement('div');tl.className='timeline';
   v.moments.forEach((m,j)=>{const s=document.createElement('div');s.className='moment'+(j==0?' best':'');
    s.style.left=(100*m[0]/v.duration)+'%';s.style.top=(2+16*Math.min(j,1))+'px';s.style.zIndex=100-j;s.style.width=Math.max(1,100*(m[1]-m[0])/v.duration)+'%';
    s.textContent=j+1;s.title=m[0].toFixed(1)+' - '+m[1].toFixed(1)+' s';s.onclick=()=>play(v,m);tl.appendChild(s);});
   li.appendChild(tl);results.appendChild(li);});
 }catch(x){err.textContent='the server did not answer: '+x;status.textContent='';}});
</script></body></html>
"""


def find_video(folder: str, video_id: str) -> str | None:
    """The file of `video_id` in `folder` (exact name, or id + a video extension)."""
    if not folder or os.path.basename(video_id) != video_id or video_id.startswith("."):
        return None
    for name in (video_id, *(video_id + e for e in VIDEO_EXTENSIONS)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


class _Handler(BaseHTTPRequestHandler):
    app: "SearchApp"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.app.verbose:
            super().log_message(format, *args)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode("utf-8"), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        try:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/":
                error = self.app.load_error() or ""
                page = PAGE.replace("__ERROR__", html.escape(error))
                self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")
            elif url.path == "/api/search":
                params = urllib.parse.parse_qs(url.query)
                query = params.get("q", [""])[0]
                top = int(params.get("top", ["10"])[0])
                code, obj = self.app.search(query, top)
                self._json(code, obj)
            elif url.path.startswith("/videos/"):
                self._video(urllib.parse.unquote(url.path[len("/videos/") :]))
            else:
                self._json(404, {"error": f"no page {url.path!r}"})
        except Exception as error:  # noqa: BLE001 - never a traceback to the browser
            traceback.print_exc(file=sys.stderr)
            self._json(500, {"error": f"internal error: {type(error).__name__}: {error}"})

    def _video(self, video_id: str) -> None:
        path = find_video(self.app.videos, video_id)
        if path is None:
            self._json(404, {"error": f"no video file for {video_id!r} in the videos folder"})
            return
        size = os.path.getsize(path)
        kind = mimetypes.guess_type(path)[0] or "video/mp4"
        start, end, code = 0, size - 1, 200
        header = self.headers.get("Range", "")
        if header.startswith("bytes="):
            first, _, last = header[6:].split(",")[0].partition("-")
            if first:
                start = int(first)
                end = int(last) if last else size - 1
            elif last:
                start = max(0, size - int(last))
            end = min(end, size - 1)
            code = 206
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(max(0, end - start + 1))
        extra = {"Accept-Ranges": "bytes"}
        if code == 206:
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(code, body, kind, extra)


class SearchApp:
    """The page's state: a Searcher made on first use (its error kept for the page)."""

    def __init__(self, open_searcher: Callable[[], Any], videos: str, verbose: bool = False):
        self._open = open_searcher
        self.videos = videos
        self.verbose = verbose
        self._searcher = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def searcher(self):
        with self._lock:
            if self._searcher is None and self._error is None:
                try:
                    self._searcher = self._open()
                except Exception as error:  # noqa: BLE001 - shown on the page
                    self._error = f"cannot open the index: {error}"
            return self._searcher

    def load_error(self) -> str | None:
        self.searcher()
        return self._error

    def search(self, query: str, top: int) -> tuple[int, dict[str, Any]]:
        searcher = self.searcher()
        if searcher is None:
            return 503, {"error": self._error}
        try:
            with self._lock:  # one query at a time through TF
                return 200, searcher.search(query, top_videos=top).to_dict()
        except ValueError as error:
            return 400, {"error": str(error)}


def make_server(app: SearchApp, port: int = 8000) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:`port` (0: any free port) serving `app`."""
    handler = type("Handler", (_Handler,), {"app": app})
    return ThreadingHTTPServer((HOST, port), handler)
