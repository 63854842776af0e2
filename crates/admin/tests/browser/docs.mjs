// Drives the admin API's /docs page in a real chromium (Debian's, through
// playwright-core). Run by crates/admin/tests/docs_ui.rs:
//
//   node docs.mjs <admin base URL> <super-admin token>
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium). Exits
// non-zero, with the reason on stderr, when the page is broken: endpoints
// missing, Try it not sending or not showing the answer, or any console
// error, page error or failed request of the page itself.
import { chromium } from "playwright-core";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node docs.mjs <admin base URL> <token>");
  process.exit(2);
}
const TIMEOUT = 15000;
const problems = [];

function check(cond, what) {
  if (!cond) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a container: no sandbox. No GPU on CI machines.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  timeout: 30000,
});
let failed = false;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  // The one error the page may log: chromium's own line for the 400 that
  // step 5 provokes on purpose.
  let expected400 = 0;
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (expected400 > 0 && /status of 400/.test(m.text())) {
      expected400 -= 1;
      return;
    }
    problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

  // 1. The page loads (no token) and lists the endpoints by tag.
  const resp = await page.goto(`${base}/docs`);
  check(resp.status() === 200, `GET /docs answered ${resp.status()}`);
  await page.waitForSelector("body[data-ready=true]");
  const ops = await page.locator("details.op").count();
  check(ops >= 20, `only ${ops} endpoints rendered`);
  for (const op of [
    "GET /workspaces/{ws}/services",
    "POST /workspaces/{ws}/services",
    "GET /workspaces/{ws}/services/{name}",
    "PUT /workspaces/{ws}/services/{name}",
    "DELETE /workspaces/{ws}/services/{name}",
    "GET /openapi.json",
  ]) {
    check(await page.locator(`details.op[data-op="${op}"]`).count() === 1, `endpoint ${op} not rendered`);
  }
  const services = page.locator('section[data-tag="services"]');
  check(await services.locator("h2").textContent() === "services", "no services section");
  check(await page.locator('nav a[href="#tag-services"]').count() === 1, "no services link in the nav");

  // 2. The token goes in once, at the top.
  await page.fill("#token", token);

  // 3. Try it: POST a service. The request body view shows the schema.
  const post = page.locator('details.op[data-op="POST /workspaces/{ws}/services"]');
  await post.locator("summary").click();
  const bodyView = post.locator(".request-schema");
  check((await bodyView.textContent()).includes("ServiceInput"), "request body schema name missing");
  await bodyView.locator("details.nested > summary", { hasText: /^Service$/ }).click();
  const urlRow = bodyView.locator('tr[data-field="url"]');
  await urlRow.waitFor();
  check((await urlRow.textContent()).includes("required"), "Service.url not shown as required");
  const prefilled = JSON.parse(await post.locator("textarea.json").inputValue());
  check(typeof prefilled.body?.url === "string", `body not pre-filled with an example: ${JSON.stringify(prefilled)}`);
  check(await post.locator('input[name="param-ws"]').inputValue() === "default", "ws not pre-filled");
  const service = { name: "web", url: "http://127.0.0.1:9/api" };
  await post.locator("textarea.json").fill(JSON.stringify({ tags: ["ui"], body: service }));
  await post.locator("button.send").click();
  await post.locator('.result .status[data-status]').waitFor();
  const postStatus = await post.locator(".result .status").textContent();
  check(postStatus.startsWith("201"), `POST showed ${postStatus}: ${await post.locator(".result .response").textContent()}`);
  const postHeaders = await post.locator(".result .headers").textContent();
  check(/^etag: "\d+"$/m.test(postHeaders), `no ETag shown after POST: ${postHeaders}`);

  // 4. Try it: GET it back.
  const get = page.locator('details.op[data-op="GET /workspaces/{ws}/services/{name}"]');
  await get.locator("summary").click();
  await get.locator('input[name="param-name"]').fill("web");
  await get.locator("button.send").click();
  await get.locator('.result .status[data-status]').waitFor();
  const getStatus = await get.locator(".result .status").textContent();
  check(getStatus.startsWith("200"), `GET showed ${getStatus}`);
  const shown = JSON.parse(await get.locator(".result .response").textContent());
  check(shown.name === "web" && shown.kind === "service", `GET showed ${JSON.stringify(shown)}`);
  check(JSON.stringify(shown.body) === JSON.stringify(service), `GET body ${JSON.stringify(shown.body)}`);
  check(JSON.stringify(shown.tags) === '["ui"]', `GET tags ${JSON.stringify(shown.tags)}`);
  check(/^etag: "\d+"$/m.test(await get.locator(".result .headers").textContent()), "no ETag shown after GET");

  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: false });

  // 5. Bad input: broken JSON is not sent; an unknown field is the API's
  // 400 with the field path, shown as it came.
  await post.locator("textarea.json").fill('{"body": {"name": "web2",');
  await post.locator("button.send").click();
  await post.locator(".note", { hasText: "not valid JSON" }).waitFor();
  check((await post.locator(".result .status").textContent()).startsWith("201"), "broken JSON was sent");
  expected400 = 1;
  await post.locator("textarea.json").fill(JSON.stringify({ body: { name: "web2", url: "http://127.0.0.1:9", colour: "red" } }));
  await post.locator("button.send").click();
  await post.locator('.result .status[data-status="400"]').waitFor();
  const problem = JSON.parse(await post.locator(".result .response").textContent());
  check(problem.type === "urn:gatehouse:problem:invalid-entity" && /colour/.test(problem.detail), `400 showed ${JSON.stringify(problem)}`);
  check(/^content-type: application\/problem\+json$/m.test(await post.locator(".result .headers").textContent()), "problem content type not shown");

  // 6. The token survives a reload (sessionStorage), the filter narrows.
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  check(await page.inputValue("#token") === token, "token not kept in sessionStorage");
  await page.fill("#filter", "/tokens");
  const visible = await page.locator("details.op:not(.hidden)").count();
  check(visible >= 2 && visible < ops, `filter left ${visible} of ${ops}`);

  if (problems.length) throw new Error(problems.join("\n"));
  check(expected400 === 0, "chromium did not log the expected 400 (the console check may be blind)");
  console.log(`ok: ${ops} endpoints, POST 201, GET 200`);
} catch (e) {
  failed = true;
  console.error(`docs page test failed: ${e.message}`);
  if (problems.length) console.error(problems.join("\n"));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
