// The TypeScript SDK's client as an OAuth-capable client connects (the MCP
// Inspector's way): with an auth provider, no token. Used by
// tests/doors/test_mcp_auth.py to see what a 401 from `toolcrib serve` makes it do.
//   node oauth_client.mjs URL
// prints {"requests": ["METHOD URL -> STATUS", ...], "redirected": [...], "saved": [...], "error": "..."}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.argv[2];
const report = { requests: [], redirected: [], saved: [], error: null };
const callback = "http://localhost:6274/oauth/callback";
const provider = {
  get redirectUrl() {
    return callback;
  },
  get clientMetadata() {
    return { client_name: "oauth-probe", redirect_uris: [callback] };
  },
  clientInformation: () => undefined,
  saveClientInformation: () => report.saved.push("client information"),
  tokens: () => undefined,
  saveTokens: () => report.saved.push("tokens"),
  redirectToAuthorization: (authorizationUrl) => report.redirected.push(String(authorizationUrl)),
  saveCodeVerifier: () => {},
  codeVerifier: () => "verifier",
};
const logged = async (input, init) => {
  const response = await fetch(input, init);
  report.requests.push(`${init?.method ?? "GET"} ${input} -> ${response.status}`);
  return response;
};
const client = new Client({ name: "oauth-probe", version: "1.0" });
try {
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider, fetch: logged }));
  report.error = "connected without a token";
} catch (err) {
  report.error = String(err.message ?? err);
}
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(0);
