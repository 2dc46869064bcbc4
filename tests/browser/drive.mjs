// Drives a running JupyterLab in headless Chromium for tests/test_widgets_browser.py.
//
//   node drive.mjs <config.json>
//
// config: { base_url, token, notebook, out_dir, user_data_dir, chromium, timeout_ms }
// Opens the notebook, runs all cells from the Run menu, waits for the FlowExplorer to draw, then moves the
// window slider with the keyboard, switches on the "arrows" view and picks another model, screenshotting the
// panel grid after each step. Prints one JSON line with what it saw; exits 1 (after a page screenshot) on
// failure. Playwright never downloads a browser here: it starts the given Chromium.
import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const timeout = cfg.timeout_ms ?? 60000;
const shot = (name) => path.join(cfg.out_dir, name);
const log = [];
const t0 = Date.now();
const step = (what) => log.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`);

const GRID = ".eventflow-explorer-panels";
const panelImg = (view) => `.eventflow-view-${view} img`;

async function kernelIdle() {
  // The notebook's kernel, as the server sees it: ready once a session exists and its kernel is idle.
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const res = await fetch(`${cfg.base_url}api/sessions?token=${cfg.token}`);
    if (res.ok) {
      const sessions = await res.json();
      if (sessions.some((s) => s.kernel && s.kernel.execution_state === "idle")) return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("the notebook's kernel did not become idle");
}

async function srcOf(page, view) {
  return page.locator(panelImg(view)).getAttribute("src");
}

async function waitForNewImage(page, view, before) {
  // ipywidgets.Image swaps in a new blob: URL on every value change; then wait for it to be decoded.
  await page.waitForFunction(
    ([sel, old]) => {
      const img = document.querySelector(sel);
      return img && img.src && img.src !== old && img.complete && img.naturalWidth > 0;
    },
    [panelImg(view), before],
    { timeout },
  );
}

const browser = await chromium.launchPersistentContext(cfg.user_data_dir, {
  executablePath: cfg.chromium,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
  ],
  viewport: { width: 1600, height: 1000 },
  timeout,
});
const consoleErrors = [];
let page;
try {
  page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text().slice(0, 300)));
  page.on("pageerror", (e) => consoleErrors.push(String(e).slice(0, 300)));

  await page.goto(`${cfg.base_url}lab/tree/${cfg.notebook}?token=${cfg.token}`);
  await page.locator(".jp-NotebookPanel .jp-Cell").first().waitFor();
  step("notebook open");
  await kernelIdle();
  step("kernel idle");

  await page.locator(".lm-MenuBar-itemLabel", { hasText: /^Run$/ }).click();
  await page.locator(".lm-Menu-itemLabel", { hasText: /^Run All Cells$/ }).click();
  await page.waitForFunction(
    (sel) => {
      const img = document.querySelector(sel);
      return img && img.complete && img.naturalWidth > 0;
    },
    panelImg("events"),
    { timeout },
  );
  step("widget drawn");
  const grid = page.locator(GRID);
  await grid.screenshot({ path: shot("0_initial.png") });
  const readout = page.locator(".eventflow-explorer .widget-readout").first();
  const readoutBefore = (await readout.textContent()).trim();

  // Move the window slider two steps with the keyboard on its handle.
  let before = await srcOf(page, "events");
  await page.locator(".eventflow-explorer .noUi-handle").first().focus();
  await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowRight");
  await waitForNewImage(page, "events", before);
  await page.waitForFunction(
    ([sel, old]) => document.querySelector(sel).textContent.trim() !== old,
    [".eventflow-explorer .widget-readout", readoutBefore],
  );
  const readoutAfter = (await readout.textContent()).trim();
  step(`slider ${readoutBefore} -> ${readoutAfter}`);
  await page.waitForTimeout(300); // the other panels follow the same kernel message
  await grid.screenshot({ path: shot("1_slider.png") });

  // Switch on the arrows view.
  await page.locator(".eventflow-explorer button", { hasText: /^arrows$/ }).click();
  await page.locator(panelImg("arrows")).waitFor();
  await page.waitForFunction((sel) => document.querySelector(sel).naturalWidth > 0, panelImg("arrows"));
  step("arrows view on");
  await grid.screenshot({ path: shot("2_arrows.png") });

  // Pick another model in the drop-down.
  before = await srcOf(page, "flow");
  const select = page.locator(".eventflow-explorer select").first();
  const options = await select.locator("option").allTextContents();
  await select.selectOption(options[options.length - 1]);
  await waitForNewImage(page, "flow", before);
  await page.waitForTimeout(300);
  step(`model -> ${options[options.length - 1]}`);
  await grid.screenshot({ path: shot("3_model.png") });
  await page.screenshot({ path: shot("page.png"), fullPage: false });

  console.log(JSON.stringify({ ok: true, readoutBefore, readoutAfter, models: options, log, consoleErrors }));
} catch (err) {
  if (page) await page.screenshot({ path: shot("failure.png") }).catch((e) => log.push(`no failure screenshot: ${e}`));
  console.log(JSON.stringify({ ok: false, error: String(err).slice(0, 2000), log, consoleErrors }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
