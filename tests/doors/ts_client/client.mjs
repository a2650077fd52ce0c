// The official TypeScript MCP SDK's own Client, driven by the Python tests
// (tests/doors/test_mcp_clients.py) and the benchmark (bench/bench_mcp.py).
//
// Reads one JSON job on stdin:
//   {"transport": "stdio", "command": "...", "args": [...], "env": {...}}
//   {"transport": "http", "url": "http://127.0.0.1:PORT/mcp", "token": "..."}
//   plus "calls": [{"name", "arguments", "meta"}...], "pings": N, "repeat": N, "sdk"
// and prints one JSON object on stdout: the listed tool names, each call's
// result as the SDK returned it ({"result": ...}) or the error it threw
// ({"error": {"code", "message"}}), and the durations (ms) of the pings and
// of each repeated call. The SDK validates structured content against the
// listed outputSchema itself: that check is the point.
//
// "sdk": "v1" (the default) is @modelcontextprotocol/sdk 1.x, the client most
// stacks ship; "v2" is @modelcontextprotocol/client 2.x, the split SDK that the
// MCP Inspector 2.x is built on.
const SDKS = {
  v1: async () => ({
    ...(await import("@modelcontextprotocol/sdk/client/index.js")),
    ...(await import("@modelcontextprotocol/sdk/client/stdio.js")),
    ...(await import("@modelcontextprotocol/sdk/client/streamableHttp.js")),
  }),
  v2: async () => ({
    ...(await import("@modelcontextprotocol/client")),
    ...(await import("@modelcontextprotocol/client/stdio")),
  }),
};

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function transportFor(job, { StdioClientTransport, StreamableHTTPClientTransport }) {
  if (job.transport === "stdio") {
    return new StdioClientTransport({ command: job.command, args: job.args, env: job.env, stderr: "ignore" });
  }
  const headers = job.token ? { Authorization: `Bearer ${job.token}` } : {};
  return new StreamableHTTPClientTransport(new URL(job.url), { requestInit: { headers } });
}

async function outcome(promise) {
  try {
    return { result: await promise };
  } catch (err) {
    return { error: { code: err.code ?? null, message: String(err.message ?? err) } };
  }
}

const job = await readStdin();
const sdk = await SDKS[job.sdk ?? "v1"]();
const client = new sdk.Client({ name: "ts-sdk-client", version: "1.0" });
const report = { tools: [], results: [], pings_ms: [], calls_ms: [] };
try {
  await client.connect(transportFor(job, sdk));
  // Listing first: the SDK keeps each tool's outputSchema and validates results against it.
  const listed = await client.listTools();
  report.tools = listed.tools.map((tool) => tool.name);
  report.protocol = client.getServerVersion()?.name ?? null;
  for (const call of job.calls ?? []) {
    const params = { name: call.name, arguments: call.arguments ?? {} };
    if (call.meta) params._meta = call.meta;
    report.results.push(await outcome(client.callTool(params)));
  }
  for (let i = 0; i < (job.pings ?? 0); i++) {
    const started = performance.now();
    await client.ping();
    report.pings_ms.push(performance.now() - started);
  }
  const repeated = job.repeat ?? null;
  for (let i = 0; repeated && i < repeated.times; i++) {
    const started = performance.now();
    await client.callTool({ name: repeated.name, arguments: repeated.arguments ?? {} });
    report.calls_ms.push(performance.now() - started);
  }
} catch (err) {
  report.failure = String(err.stack ?? err);
} finally {
  await client.close().catch(() => {});
}
process.stdout.write(JSON.stringify(report) + "\n");
