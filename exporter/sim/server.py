"""The fake Canvas over HTTP: routing, auth, throttling, faults, Link headers, and the Simulator fixture.

One low-level aiohttp handler does everything (no router, no middleware) to keep per-request overhead small.
Paths are split from `request.raw_path` and each segment is percent-decoded exactly once here, so
`sis_course_id:MATH-101%2FF26` reaches the lookup as `sis_course_id:MATH-101/F26` whatever aiohttp's own
path normalisation does.

GET answers come from the RenderCache (render.py): each course, section and user rendered once per
variant and institution state, joined into the page body. `options.render_cache = False` builds every
answer from the model instead (the reference the cache is tested against). Parsed queries, routes and
the query part of Link URLs are memoized by the request text they are a pure function of.

Write requests (POST/PUT/DELETE) have their body read before the answer is built: a urlencoded form or a
JSON object, merged with the query as Rails does (forms.py). A fault that replaces the answer (5xx,
throttle) comes before the write, so nothing changes; a reset or cut body comes after it, so the change
is made and the client does not learn of it, as with a real server.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import signal
import socket
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Hashable, TypeVar
from urllib.parse import unquote

import orjson
from aiohttp import web

from exporter.sim import endpoints, writes
from exporter.sim.auth import ADMIN_TOKEN, NOSIS_TOKEN, bearer_token
from exporter.sim.bucket import RATE_LIMIT_403_BODY, RATE_LIMIT_429_BODY, LeakyBucket, ruby_float
from exporter.sim.endpoints import NOT_FOUND_BODY, Call, Forbidden, HttpError, Reply
from exporter.sim.faults import HTML_ERROR_BODY, NO_FAULTS, FaultInjector, FaultPlan
from exporter.sim.forms import BadBody, body_params, merge_params
from exporter.sim.institution import Institution
from exporter.sim.options import SimOptions
from exporter.sim.pagination import InvalidPage, PageLinks, Params, escape_segment, link_base, parse_query, render_links
from exporter.sim.render import RenderCache
from exporter.sim.views import stringify_ids

JSON_TYPE = "application/json; charset=utf-8"
STRING_IDS = "application/json+canvas-string-ids"
WWW_AUTHENTICATE = 'Bearer realm="canvas-lms"'
INVALID_PAGE_BODY = {"errors": [{"message": "An error occurred.", "error_code": "not_found"}]}
BAD_BODY = {"errors": [{"message": "An error occurred.", "error_code": "bad_request"}]}
INVALID_TOKEN_BODY = {"errors": [{"message": "Invalid access token."}]}
UNAUTHENTICATED_BODY = {"status": "unauthenticated", "errors": [{"message": "user authorization required"}]}
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
MEMO_LIMIT = 100_000  # entries a request-text memo holds before it starts over

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Memo(Generic[K, V]):
    """Results of a pure function of request text, kept until MEMO_LIMIT of them, then started over."""

    __slots__ = ("_found", "_compute")

    def __init__(self, compute: Callable[[K], V]) -> None:
        self._found: dict[K, V] = {}
        self._compute = compute

    def __call__(self, key: K) -> V:
        try:
            return self._found[key]
        except KeyError:
            pass
        if len(self._found) >= MEMO_LIMIT:
            self._found.clear()
        value = self._found[key] = self._compute(key)
        return value

Hook = Callable[[web.BaseRequest], "None | Awaitable[None]"]


@dataclass(slots=True)
class SimStats:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_endpoint: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)  # by kind: error, reset, truncate, stall, throttle, link_loop
    throttled: int = 0  # refused by the bucket or a throttle fault
    bytes_sent: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # endpoint name, also the stats key
    refs: tuple[str, ...]  # decoded path references
    template: str  # path with {} for each reference, to rebuild Link URLs

    def path(self) -> str:
        return self.template.format(*(escape_segment(r) for r in self.refs))


WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def route(raw_path: str, method: str = "GET") -> Route | None:
    """The Rails route a method and path match (HEAD as GET), or None (404)."""
    parts = raw_path.split("/")
    if len(parts) < 5 or parts[0] != "" or parts[1] != "api" or parts[2] != "v1":
        return None
    try:
        seg = [unquote(p, errors="strict") for p in parts[3:]]
    except UnicodeDecodeError:
        return None
    match ("GET" if method == "HEAD" else method, seg):
        case ("GET", ["accounts", a, "courses"]):
            return Route("account_courses", (a,), "/api/v1/accounts/{}/courses")
        case ("GET", ["courses", c]):
            return Route("course_show", (c,), "/api/v1/courses/{}")
        case ("GET", ["courses", c, "sections"]):
            return Route("course_sections", (c,), "/api/v1/courses/{}/sections")
        case ("POST", ["courses", c, "sections"]):
            return Route("section_create", (c,), "/api/v1/courses/{}/sections")
        case ("GET", ["courses", c, "sections", s]):
            return Route("course_section_show", (c, s), "/api/v1/courses/{}/sections/{}")
        case ("GET", ["sections", s]):
            return Route("section_show", (s,), "/api/v1/sections/{}")
        case ("PUT", ["sections", s]):
            return Route("section_update", (s,), "/api/v1/sections/{}")
        case ("DELETE", ["sections", s]):
            return Route("section_delete", (s,), "/api/v1/sections/{}")
        case ("POST", ["sections", s, "crosslist", c]):
            return Route("section_crosslist", (s, c), "/api/v1/sections/{}/crosslist/{}")
        case ("DELETE", ["sections", s, "crosslist"]):
            return Route("section_uncrosslist", (s,), "/api/v1/sections/{}/crosslist")
        case ("GET", ["sections", s, "users"]):
            return Route("section_users", (s,), "/api/v1/sections/{}/users")
    return None


HANDLERS: dict[str, Callable[..., Reply]] = {
    "account_courses": endpoints.account_courses,
    "course_show": endpoints.course_show,
    "course_sections": endpoints.course_sections,
    "course_section_show": endpoints.course_section_show,
    "section_show": endpoints.section_show,
    "section_users": endpoints.section_users,
    "section_create": writes.section_create,
    "section_update": writes.section_update,
    "section_delete": writes.section_delete,
    "section_crosslist": writes.section_crosslist,
    "section_uncrosslist": writes.section_uncrosslist,
}


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]
    kind: str = "unrouted"
    items: int = 0
    links: tuple[str, PageLinks, int] | None = None  # link_base text, pages, per_page


def json_answer(status: int, payload: Any, headers: dict[str, str] | None = None, kind: str = "error") -> Answer:
    h = {"Content-Type": JSON_TYPE}
    if headers:
        h.update(headers)
    return Answer(status, orjson.dumps(payload), h, kind)


class Simulator:
    """`async with Simulator(institution, options) as sim:` serves on 127.0.0.1 at `sim.base_url`.

    `sim.institution` and `sim.options` may be replaced or mutated while it runs; `sim.hooks` are called
    (sync or async) with each request before it is handled.
    """

    def __init__(
        self,
        institution: Institution | None = None,
        options: SimOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = options or SimOptions()
        self.institution = institution or Institution.generate(seed=self.options.seed, courses=self.options.courses)
        self.host = host
        self.port = port
        self.stats = SimStats()
        self.hooks: list[Hook] = []
        self.buckets: dict[str, LeakyBucket] = {}
        self.faults = FaultInjector(self.options.seed)
        self.render = RenderCache()
        self._queries: _Memo[str, Params] = _Memo(parse_query)
        self._routes: _Memo[tuple[str, str], tuple[Route, str] | None] = _Memo(_routed)
        # (base URL, query) of a GET -> link_base; a GET's params are exactly parse_query(query)
        self._link_bases: _Memo[tuple[str, str], str] = _Memo(
            lambda key: link_base(key[0], self._queries(key[1])))
        self._runner: web.ServerRunner | None = None
        self._closing = asyncio.Event()
        self.base_url = ""

    # ----- lifecycle -----

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset_buckets(self) -> None:
        self.buckets.clear()

    def bucket(self, token: str) -> LeakyBucket:
        """The throttle bucket of a token (created on first use with the current options)."""
        key = f"token:{token}"
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = LeakyBucket(self.options.bucket, self.options.clock)
        return b

    # ----- one request -----

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.stats.requests += 1
        for hook in list(self.hooks):
            result = hook(request)
            if inspect.isawaitable(result):
                await result
        opts = self.options
        raw_path, _, query = request.raw_path.partition("?")
        params = self._parse_query(query)
        token = bearer_token(request.headers.get("Authorization"), _scalar(params.get("access_token")))
        client = f"token:{token}" if token else f"ip:{request.remote}"
        plan = self.faults.plan(opts.faults, raw_path, client)

        if plan.stall:
            self.stats.faults["stall"] += 1
            await self._wait(opts.faults.stall_seconds)
        if plan.throttle or plan.error_status:
            await self._wait(opts.latency_ms / 1000)
            answer = self._fault_answer(plan, opts)
            return await self._send(request, answer, NO_FAULTS)

        bucket = None
        if opts.throttle:
            bucket = self.buckets.get(client)
            if bucket is None:
                bucket = self.buckets[client] = LeakyBucket(opts.bucket, opts.clock)
            bucket.params, bucket.clock = opts.bucket, opts.clock
            if not bucket.reserve():
                bucket.settle(0.0)
                self.stats.throttled += 1
                answer = self._throttled(opts, ruby_float(bucket.remaining))
                return await self._send(request, answer, NO_FAULTS)
        try:
            await self._wait(opts.latency_ms / 1000)
            if request.method in WRITE_METHODS:
                params = await _write_params(request, query)
            answer = self._answer(request, raw_path, query, params, token)
        except BaseException:
            if bucket is not None:  # a cancelled or failed request still hands back its up-front cost
                bucket.settle(0.0)
            raise
        if bucket is not None:
            cost = opts.request_cost(answer.kind, answer.items) if callable(opts.request_cost) else opts.request_cost
            bucket.settle(cost)
            answer.headers["X-Request-Cost"] = ruby_float(float(cost))
            answer.headers["X-Rate-Limit-Remaining"] = ruby_float(bucket.remaining)
        return await self._send(request, answer, plan)

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake up when the simulator stops, so a stalled request never holds up shutdown."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    def _parse_query(self, query: str) -> Params:
        """parse_query, memoized; each request gets its own copy (lists too), free to change."""
        return {k: v.copy() if type(v) is list else v for k, v in self._queries(query).items()}

    def _answer(self, request: web.BaseRequest, raw_path: str, query: str, params: dict | BadBody,
                token: str | None) -> Answer:
        """The whole answer, built without awaiting: a mutation never lands half-way through one."""
        opts = self.options
        if token is None:
            return json_answer(401, UNAUTHENTICATED_BODY, {"WWW-Authenticate": WWW_AUTHENTICATE}, "auth")
        perms = opts.tokens.get(token)
        if perms is None:
            return json_answer(401, INVALID_TOKEN_BODY, {"WWW-Authenticate": WWW_AUTHENTICATE}, "auth")
        if isinstance(params, BadBody):
            return json_answer(400, BAD_BODY)
        method = request.method
        routed = self._routes((raw_path, method))
        if routed is None:
            return json_answer(404, NOT_FOUND_BODY)
        r, path = routed
        inst = self.institution
        reading = method not in WRITE_METHODS
        string_ids = STRING_IDS in request.headers.get("Accept", "")
        # Writes render from the model: they change it, and the cache checks its state once, here.
        render = self.render.current(inst) if reading and opts.render_cache else None
        call = Call(perms, params, opts.forbidden_courses, students_cap=opts.students_cap,
                    min_search_term_length=opts.min_search_term_length, lenient_dates=opts.lenient_dates,
                    now=opts.now(), string_ids=string_ids, render=render)
        try:
            reply = HANDLERS[r.kind](inst, call, *r.refs)
        except Forbidden as e:
            return json_answer(403 if opts.auth_error_updates else 401, e.body, kind=r.kind)
        except HttpError as e:
            return json_answer(e.status, e.body, kind=r.kind)
        except InvalidPage:
            return json_answer(404, INVALID_PAGE_BODY, kind=r.kind)
        if reply.body is not None:
            answer = Answer(200, reply.body, {"Content-Type": JSON_TYPE}, r.kind, reply.items)
        else:
            payload = stringify_ids(reply.payload) if string_ids else reply.payload
            answer = Answer(200, orjson.dumps(payload), {"Content-Type": JSON_TYPE}, r.kind,
                            len(payload) if isinstance(payload, list) else 1)
        if reply.links is not None:
            base_url = f"{request.scheme}://{request.host}{path}"
            base = self._link_bases((base_url, query)) if reading else link_base(base_url, params)
            answer.links = (base, reply.links, reply.per_page)
        return answer

    def _throttled(self, opts: SimOptions, remaining: str) -> Answer:
        status, body = (429, RATE_LIMIT_429_BODY) if opts.throttle_mode == "429" else (403, RATE_LIMIT_403_BODY)
        return Answer(status, body, {"Content-Type": "text/plain; charset=utf-8",
                                     "X-Rate-Limit-Remaining": remaining}, "throttled")

    def _fault_answer(self, plan: FaultPlan, opts: SimOptions) -> Answer:
        if plan.throttle:
            self.stats.faults["throttle"] += 1
            self.stats.throttled += 1
            return self._throttled(opts, "0.0")
        status = plan.error_status or 500
        self.stats.faults["error"] += 1
        if plan.error_html:
            body = HTML_ERROR_BODY.format(status=status, reason=REASONS.get(status, "Error")).encode()
            return Answer(status, body, {"Content-Type": "text/html; charset=utf-8"}, "fault")
        return json_answer(status, {"errors": [{"message": "An error occurred.",
                                                "error_code": REASONS.get(status, "error").lower().replace(" ", "_")}],
                                    "error_report_id": 1000 + self.stats.faults["error"]}, kind="fault")

    async def _send(self, request: web.BaseRequest, answer: Answer, plan: FaultPlan) -> web.StreamResponse:
        if answer.links is not None:
            base, page_links, per_page = answer.links
            if plan.link_loop and page_links.next is not None:
                self.stats.faults["link_loop"] += 1
                page_links = _loop_back(page_links)
            header = render_links(base, page_links, per_page)
            if header is not None:
                answer.headers["Link"] = header
        self.stats.by_status[answer.status] += 1
        self.stats.by_endpoint[answer.kind] += 1
        if plan.reset or plan.truncate:
            return await self._send_broken(request, answer, reset=plan.reset)
        self.stats.bytes_sent += len(answer.body)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def _send_broken(self, request: web.BaseRequest, answer: Answer, *, reset: bool) -> web.StreamResponse:
        """Headers promise the whole body; half of it is sent, then the connection is reset or closed."""
        self.stats.faults["reset" if reset else "truncate"] += 1
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_length = len(answer.body)
        await response.prepare(request)
        cut = max(1, len(answer.body) // 2)
        await response.write(answer.body[:cut])
        self.stats.bytes_sent += cut
        transport = request.transport
        if transport is not None:
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        return response


def _loop_back(links: PageLinks) -> PageLinks:
    return PageLinks(links.current, max(1, links.current - 1), links.prev, links.first, links.last)


def _scalar(value: str | list[str] | None) -> str | None:
    return value if isinstance(value, str) else None


async def _write_params(request: web.BaseRequest, query: str) -> dict | BadBody:
    """Rails' params for a write: the body's (form or JSON object), then the query's on top."""
    try:
        body = body_params(request.content_type, await request.read())
    except BadBody as e:
        return e
    return merge_params(body, query)


# ----- the blocking entry point behind `canvas-export simulate` -----

LOOPBACK = ("127.0.0.1", "localhost", "::1")
YOUNG_GC_THRESHOLD = 50_000  # allocations between two young collections (CPython's default: 700)


def tune_gc_for_serving() -> None:
    """For a process that only serves one institution: move the heap built so far (the institution)
    out of the cyclic GC's reach, and collect the young generation less often. Cold answers allocate many
    objects that point into that heap, and every young collection reads the header of each object they
    point to: scattered in memory, those reads are cache misses (about half the CPU of a cold roster)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, older, oldest)


def _routed(key: tuple[str, str]) -> tuple[Route, str] | None:
    """route() of (path, method), and the route's Link path."""
    r = route(*key)
    return None if r is None else (r, r.path())


def run_simulator(options: SimOptions, host: str = "127.0.0.1", port: int = 8800, truth_out: str | None = None) -> None:
    """Serve a generated institution until Ctrl-C. Binds the loopback interface only."""
    if host not in LOOPBACK:
        raise ValueError(f"the simulator only binds the loopback interface, not {host!r}")
    institution = Institution.generate(seed=options.seed, courses=options.courses)
    if truth_out is not None:
        from exporter.sim.truth import AccountScope, ground_truth

        ground_truth(institution, AccountScope("self")).write(truth_out)
    tune_gc_for_serving()

    async def serve() -> None:
        stop = asyncio.Event()
        # Ctrl-C and SIGTERM both stop it cleanly, also when SIGINT came in ignored (a shell without job
        # control starts background jobs that way, and Python then leaves it ignored). Set before the banner,
        # so a signal sent as soon as it is read is not lost.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError):  # not on Windows' loop: Ctrl-C still raises
                pass
        async with Simulator(institution, options, host=host, port=port) as sim:
            print(f"Canvas simulator at {sim.base_url} ({institution.counts()})", flush=True)
            print(f"export CANVAS_BASE_URL={sim.base_url}")
            print(f"export CANVAS_API_TOKEN={ADMIN_TOKEN}")
            print(f"# a token without SIS permissions: {NOSIS_TOKEN}")
            print("# the counts above are the whole model's, deleted courses included: a crawl exports fewer "
                  "(--truth-out DIR writes exactly what --account self should give)")
            if truth_out is not None:
                print(f"# ground truth for --account self written to {truth_out}")
            print("Ctrl-C to stop.", flush=True)
            await stop.wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    print("stopped", file=sys.stderr)
