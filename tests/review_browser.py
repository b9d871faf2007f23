"""Checks a `gtseg review` report in headless Chromium, over the DevTools protocol.

Usage: review_browser.py REPORT_DIR SCREENSHOT.png

Opens REPORT_DIR/index.html from file://, uses the filters as a person would, saves a
screenshot, and prints one JSON object with what it saw (the Rust test asserts on it):
the rows' agreement in page order, the rows visible after each filter, the legend's texts,
any <img src=x>, any dialog or script error, and every URL the page requested.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Page:
    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise RuntimeError(f"no {method} within {seconds} s")

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                      awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")


ROWS = "[...document.querySelectorAll('#rows tr.row')]"


def main():
    report, shot = os.path.abspath(sys.argv[1]), sys.argv[2]
    chrome = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])))
    port = free_port()
    profile = tempfile.mkdtemp(prefix="review-chromium-")
    proc = subprocess.Popen(
        [chrome, "--headless=new", f"--remote-debugging-port={port}", "--remote-allow-origins=*",
         f"--user-data-dir={profile}", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                page_target = next(t for t in targets if t["type"] == "page")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        page = Page(page_target["webSocketDebuggerUrl"])
        for domain in ["Network", "Page", "Runtime"]:
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url="file://" + os.path.join(report, "index.html"))
        page.wait_for("Page.loadEventFired")
        # Let the first thumbnails arrive.
        page.eval("Promise.all([...document.images].slice(0, 4).map(i => i.decode().catch(() => null)))")
        seen = {
            "agreements": page.eval(f"{ROWS}.map(r => r.dataset.agreement)"),
            "status": page.eval("document.getElementById('status').textContent"),
            "legend": page.eval("[...document.querySelectorAll('#legend li')].map(l => l.textContent)"),
            "workers": page.eval("[...document.querySelectorAll('#worker option')].map(o => o.value).filter(Boolean)"),
            "class_options": page.eval("[...document.querySelectorAll('#class option')].map(o => o.value).filter(Boolean)"),
            "img_x": page.eval("document.querySelectorAll('img[src=\"x\"]').length"),
            "first_images_loaded": page.eval("[...document.images].slice(0, 2).every(i => i.complete && i.naturalWidth > 0)"),
            "failed": page.eval("[...document.querySelectorAll('#failed li')].map(l => l.textContent)"),
        }
        page.eval("document.getElementById('low').click()")
        seen["low_rows"] = page.eval(f"{ROWS}.length")
        seen["low_rows_all_low"] = page.eval(f"{ROWS}.every(r => r.classList.contains('low'))")
        page.eval("document.getElementById('low').click()")
        seen["all_rows"] = page.eval(f"{ROWS}.length")
        worker = seen["workers"][-1] if seen["workers"] else ""
        page.eval(f"(() => {{ const s = document.getElementById('worker'); s.value = {json.dumps(worker)}; s.dispatchEvent(new Event('change')); }})()")
        seen["worker_rows"] = page.eval(f"{ROWS}.length")
        seen["worker_rows_text"] = page.eval(f"{ROWS}.map(r => r.textContent.includes({json.dumps(worker)}))")
        page.eval("(() => { const s = document.getElementById('worker'); s.value = ''; s.dispatchEvent(new Event('change')); })()")
        seen["class_rows"] = {}
        for cls in seen["class_options"] + [""]:
            page.eval(f"(() => {{ const s = document.getElementById('class'); s.value = {json.dumps(cls)}; s.dispatchEvent(new Event('change')); }})()")
            seen["class_rows"][cls] = page.eval(f"{ROWS}.length")
        shot_data = page.call("Page.captureScreenshot", format="png")["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(shot_data))
        page.eval("new Promise(r => setTimeout(r, 200))")
        seen["requests"] = sorted({e["params"]["request"]["url"] for e in page.events
                                   if e.get("method") == "Network.requestWillBeSent"})
        seen["dialogs"] = [e["params"].get("message") for e in page.events
                           if e.get("method") == "Page.javascriptDialogOpening"]
        seen["errors"] = [e["params"]["exceptionDetails"].get("text") for e in page.events
                          if e.get("method") == "Runtime.exceptionThrown"]
        seen["csp_violations"] = [e["params"]["entry"]["text"] for e in page.events
                                  if e.get("method") == "Log.entryAdded"]
        print(json.dumps(seen))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
