"""Google Cloud endpoints for the tests, on 127.0.0.1: Pub/Sub over gRPC, IAM over REST.

Google's emulator needs the Cloud SDK, which cannot be installed here. This server speaks
the Subscriber service of the real gRPC API (google.pubsub.v1: StreamingPull, Pull,
Acknowledge, ModifyAckDeadline, GetSubscription), with the message types of Google's own
`google-cloud-pubsub` package, so the official Rust client talks to it unmodified. It keeps
what the tests must observe: leases that expire at their deadline and redeliver, nacks
(a deadline of 0) that redeliver at once, flow control per stream, delivery attempts and
a dead-letter subscription after `max_delivery_attempts`.

The same second port serves the IAM API's two REST list calls
(projects.serviceAccounts.list, projects.serviceAccounts.keys.list) for the key inventory,
and tests drive everything over a small JSON API on it:
  POST /admin/iam      {"project", "accounts": {EMAIL: [{"id", "valid_after", "disabled"?, "type"?}]}}
  POST /admin/create   {"name", "ack_deadline_seconds"?, "dead_letter"?: {"subscription", "max_delivery_attempts"}}
  POST /admin/publish  {"subscription", "messages": [{"data": base64, "attributes"?: {}}]}
  GET  /admin/stats?subscription=NAME

Started by scripts/test-servers.sh:  python gcp_server.py --port 18085 --admin-port 18086
"""

import argparse
import base64
import collections
import datetime
import itertools
import json
import threading
import time
import urllib.parse
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.pubsub_v1 import types

LOCK = threading.Condition()
SUBSCRIPTIONS = {}
IDS = itertools.count(1)
KEY_TYPES = {"USER_MANAGED": "1", "SYSTEM_MANAGED": "2"}
# IAM: project -> service-account email -> [{"id", "valid_after", "disabled", "type"}]
SERVICE_ACCOUNTS = {}


class Subscription:
    def __init__(self, name, ack_deadline, dead_letter, max_attempts):
        self.name = name
        self.ack_deadline = ack_deadline
        self.dead_letter = dead_letter
        self.max_attempts = max_attempts
        self.ready = collections.deque()
        # message id -> {"data", "attributes", "publish_time", "attempts"}
        self.messages = {}
        # ack id -> [message id, deadline, stream id]
        self.leases = {}
        self.stats = collections.Counter()

    def publish(self, data, attributes):
        mid = str(next(IDS))
        self.messages[mid] = {
            "data": data,
            "attributes": attributes,
            "publish_time": datetime.datetime.now(datetime.timezone.utc),
            "attempts": 0,
        }
        self.ready.append(mid)
        self.stats["published"] += 1
        return mid

    def take(self, limit, deadline_secs, stream):
        """Lease up to `limit` ready messages; the dead-letter policy applies first."""
        out = []
        while self.ready and len(out) < limit:
            mid = self.ready.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            if self.dead_letter and msg["attempts"] >= self.max_attempts:
                del self.messages[mid]
                SUBSCRIPTIONS[self.dead_letter].publish(msg["data"], msg["attributes"])
                self.stats["dead_lettered"] += 1
                continue
            msg["attempts"] += 1
            self.stats["delivered"] += 1
            if msg["attempts"] > 1:
                self.stats["redelivered"] += 1
            ack_id = f"{self.name}#{mid}#{msg['attempts']}"
            self.leases[ack_id] = [mid, time.monotonic() + deadline_secs, stream]
            out.append(
                types.ReceivedMessage(
                    ack_id=ack_id,
                    message=types.PubsubMessage(
                        data=msg["data"],
                        attributes=msg["attributes"],
                        message_id=mid,
                        publish_time=msg["publish_time"],
                    ),
                    # Pub/Sub fills it only for subscriptions with a dead-letter policy.
                    delivery_attempt=msg["attempts"] if self.dead_letter else 0,
                )
            )
        return out

    def ack(self, ack_ids):
        for ack_id in ack_ids:
            lease = self.leases.pop(ack_id, None)
            if lease is None:
                self.stats["stale_acks"] += 1
                continue
            self.messages.pop(lease[0], None)
            self.stats["acked"] += 1

    def modify(self, ack_ids, seconds):
        for ack_id in ack_ids:
            lease = self.leases.get(ack_id)
            if lease is None:
                self.stats["stale_modacks"] += 1
            elif seconds == 0:
                del self.leases[ack_id]
                self.ready.appendleft(lease[0])
                self.stats["nacked"] += 1
            else:
                lease[1] = time.monotonic() + seconds
                self.stats["extensions"] += 1

    def expire(self, now):
        for ack_id, lease in list(self.leases.items()):
            if lease[1] <= now:
                del self.leases[ack_id]
                self.ready.append(lease[0])
                self.stats["expired"] += 1

    def summary(self):
        out = dict(self.stats)
        out["backlog"] = len(self.ready)
        out["outstanding"] = len(self.leases)
        out["unacked"] = len(self.messages)
        return out


def subscription(name, context):
    sub = SUBSCRIPTIONS.get(name)
    if sub is None:
        context.abort(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={name}).")
    return sub


def streaming_pull(requests, context):
    first = next(requests)
    with LOCK:
        sub = subscription(first.subscription, context)
        sub.stats["streams"] += 1
        sub.ack(first.ack_ids)
    deadline = first.stream_ack_deadline_seconds or sub.ack_deadline
    max_messages = first.max_outstanding_messages if first.max_outstanding_messages > 0 else 1 << 30
    stream = object()
    closed = threading.Event()

    def read():
        try:
            for req in requests:
                with LOCK:
                    sub.ack(req.ack_ids)
                    for ack_id, secs in zip(req.modify_deadline_ack_ids, req.modify_deadline_seconds):
                        sub.modify([ack_id], secs)
                    LOCK.notify_all()
        except grpc.RpcError:
            pass
        closed.set()
        with LOCK:
            LOCK.notify_all()

    threading.Thread(target=read, daemon=True).start()
    while context.is_active() and not closed.is_set():
        with LOCK:
            held = sum(1 for lease in sub.leases.values() if lease[2] is stream)
            room = min(100, max_messages - held)
            batch = sub.take(room, deadline, stream) if room > 0 else []
            if not batch:
                LOCK.wait(0.2)
                continue
        yield types.StreamingPullResponse(received_messages=batch)


def pull(request, context):
    with LOCK:
        sub = subscription(request.subscription, context)
        return types.PullResponse(
            received_messages=sub.take(request.max_messages or 100, sub.ack_deadline, None)
        )


def acknowledge(request, context):
    with LOCK:
        subscription(request.subscription, context).ack(request.ack_ids)
        LOCK.notify_all()
    return None


def modify_ack_deadline(request, context):
    with LOCK:
        subscription(request.subscription, context).modify(
            request.ack_ids, request.ack_deadline_seconds
        )
        LOCK.notify_all()
    return None


def get_subscription(request, context):
    with LOCK:
        sub = subscription(request.subscription, context)
        return types.Subscription(
            name=sub.name,
            topic="projects/test/topics/audit-logs",
            ack_deadline_seconds=sub.ack_deadline,
        )


def expirer():
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        with LOCK:
            for sub in SUBSCRIPTIONS.values():
                sub.expire(now)
            LOCK.notify_all()


def empty(_):
    return b""


def handlers():
    def unary(fn, req, resp):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=req.deserialize, response_serializer=resp
        )

    return grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Subscriber",
        {
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                streaming_pull,
                request_deserializer=types.StreamingPullRequest.deserialize,
                response_serializer=types.StreamingPullResponse.serialize,
            ),
            "Pull": unary(pull, types.PullRequest, types.PullResponse.serialize),
            "Acknowledge": unary(acknowledge, types.AcknowledgeRequest, empty),
            "ModifyAckDeadline": unary(modify_ack_deadline, types.ModifyAckDeadlineRequest, empty),
            "GetSubscription": unary(
                get_subscription, types.GetSubscriptionRequest, types.Subscription.serialize
            ),
        },
    )


class Admin(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path.startswith("/v1/projects/"):
            return self.iam(url)
        name = urllib.parse.parse_qs(url.query).get("subscription", [""])[0]
        with LOCK:
            sub = SUBSCRIPTIONS.get(name)
            if url.path != "/admin/stats" or sub is None:
                return self.reply(404, {"error": f"no subscription {name!r}"})
            return self.reply(200, sub.summary())

    def iam(self, url):
        """The IAM API's REST list calls, two accounts per page to exercise paging."""
        parts = urllib.parse.unquote(url.path).split("/")
        query = urllib.parse.parse_qs(url.query)
        with LOCK:
            # /v1/projects/P/serviceAccounts
            if len(parts) == 5 and parts[4] == "serviceAccounts":
                project = parts[3]
                emails = sorted(SERVICE_ACCOUNTS.get(project, {}))
                start = int(query.get("pageToken", ["0"])[0] or 0)
                page = emails[start : start + 2]
                body = {
                    "accounts": [
                        {
                            "name": f"projects/{project}/serviceAccounts/{e}",
                            "email": e,
                            "projectId": project,
                        }
                        for e in page
                    ]
                }
                if start + 2 < len(emails):
                    body["nextPageToken"] = str(start + 2)
                return self.reply(200, body)
            # /v1/projects/P/serviceAccounts/EMAIL/keys
            if len(parts) == 7 and parts[4] == "serviceAccounts" and parts[6] == "keys":
                project, email = parts[3], parts[5]
                keys = SERVICE_ACCOUNTS.get(project, {}).get(email)
                if keys is None:
                    return self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
                # Google's clients ask for enums as numbers (`$alt=json;enum-encoding=int`).
                as_int = "enum-encoding=int" in query.get("$alt", [""])[0]
                wanted = {KEY_TYPES.get(t, t) for t in query.get("keyTypes", [])}
                return self.reply(
                    200,
                    {
                        "keys": [
                            {
                                "name": f"projects/{project}/serviceAccounts/{email}/keys/{k['id']}",
                                "validAfterTime": k["valid_after"],
                                "keyType": int(KEY_TYPES[k.get("type", "USER_MANAGED")])
                                if as_int
                                else k.get("type", "USER_MANAGED"),
                                "disabled": k.get("disabled", False),
                            }
                            for k in keys
                            if not wanted or KEY_TYPES[k.get("type", "USER_MANAGED")] in wanted
                        ]
                    },
                )
        return self.reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with LOCK:
            if self.path == "/admin/iam":
                SERVICE_ACCOUNTS[body["project"]] = body["accounts"]
                return self.reply(200, {"project": body["project"]})
            if self.path == "/admin/create":
                dead = body.get("dead_letter") or {}
                SUBSCRIPTIONS[body["name"]] = Subscription(
                    body["name"],
                    body.get("ack_deadline_seconds", 10),
                    dead.get("subscription"),
                    dead.get("max_delivery_attempts", 5),
                )
                return self.reply(200, {"created": body["name"]})
            if self.path == "/admin/publish":
                sub = SUBSCRIPTIONS.get(body["subscription"])
                if sub is None:
                    return self.reply(404, {"error": "no such subscription"})
                ids = [
                    sub.publish(base64.b64decode(m["data"]), m.get("attributes", {}))
                    for m in body["messages"]
                ]
                LOCK.notify_all()
                return self.reply(200, {"message_ids": ids})
        return self.reply(404, {"error": f"no route {self.path}"})


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--port", type=int, default=18085)
    args.add_argument("--admin-port", type=int, default=18086)
    opts = args.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((handlers(),))
    server.add_insecure_port(f"127.0.0.1:{opts.port}")
    server.start()
    threading.Thread(target=expirer, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", opts.admin_port), Admin).serve_forever()


if __name__ == "__main__":
    main()
