// Drives Swagger UI in headless Chromium as a person would: for each document in the
// top bar's list, select it, open one operation, "Try it out", (optionally) type a
// request body, "Execute", and read the answer the page shows. Prints one JSON line
// per document; the Rust test (tests/blackbox/swagger_ui.rs) checks them.
//
// Environment: BASE (server URL), CHROMIUM (browser binary), PLAN (JSON list of
// {dialect, title, operation, body?}), SHOTS (directory for screenshots).
import { chromium } from "playwright-core";

const plan = JSON.parse(process.env.PLAN);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  await page.goto(`${process.env.BASE}/swagger-ui/`);
  for (const step of plan) {
    await page.selectOption(".topbar select", { label: step.dialect });
    await page.locator(".information-container .title", { hasText: step.title }).waitFor();
    const op = page.locator(`[id="${step.operation}"]`);
    await op.locator(".opblock-summary").first().click();
    await op.locator(".try-out__btn").click();
    if (step.body !== undefined) {
      await op.locator("textarea.body-param__text").fill(step.body);
    }
    await op.locator(".execute").click();
    const status = op.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor();
    const shown = op.locator(".live-responses-table .response-col_description .highlight-code");
    const body = (await shown.count()) ? await shown.first().innerText() : "";
    await page.screenshot({ path: `${process.env.SHOTS}/${step.dialect}.png`, fullPage: true });
    console.log(JSON.stringify({ dialect: step.dialect, status: (await status.innerText()).trim(), body }));
  }
} finally {
  await browser.close();
}
