// Opens leakdiag's HTML pages in the system Chromium and checks them.
//
//   node check-pages.mjs <screenshot folder> <page.html>...
//
// Each page is opened as a file:// URL with the network cut off: only file: URLs
// inside the page's report folder may load, anything else is aborted and counted as a
// failed request. A page passes when, with JavaScript enabled and again with it
// disabled, it loads without failed requests, console errors or page errors, every
// <svg> chart inside figure.chart is visible with a non-zero size, and its main
// content is visible: the inputs table (`#inputs tbody tr`) on an index page, a sample
// stack (`.stack ol.frames li`) on a report page. The kind is taken from a `data-page`
// attribute on <html> or <body> when there is one, else from the file name
// (index.html is an index page, anything else a report page).
//
// Each page is also checked for what its readers need (issue: one verdict, a report
// written for each reader): no horizontal page overflow at 1400, 1280 and 420 px wide
// (wide tables scroll inside their own box); the verdict (`#verdict .headline`, or
// `#observed` on a vendor page) starts within the first screen at 1280x800 and
// 420x800; every link inside the report folder resolves (the file exists and, for a
// `#fragment`, an element with that id is in it); and the page prints to PDF (A4).
//
// Prints one JSON line per page, then `N passed, M failed`; exits 1 listing every
// problem when a page fails, 2 on a usage or browser start error. A full-page PNG per
// page and JavaScript mode goes into the screenshot folder.
//
// The browser is /usr/bin/chromium (Debian's `chromium`), or $CHROMIUM_PATH.
// playwright-core never downloads a browser.

import { chromium } from 'playwright-core';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TIMEOUT_MS = 30_000;
const LAYOUT_WIDTHS = [1400, 1280, 420];
const FIRST_SCREENS = [
  { width: 1280, height: 800 },
  { width: 420, height: 800 },
];
const VIEWPORT = { width: 1280, height: 900 };

function usage(message) {
  console.error(`check-pages: ${message}`);
  console.error('usage: node check-pages.mjs <screenshot folder> <page.html>...');
  process.exit(2);
}

const [outArg, ...pageArgs] = process.argv.slice(2);
if (!outArg || pageArgs.length === 0) usage('need a screenshot folder and at least one page');
if (!existsSync(CHROMIUM)) {
  usage(`no browser at ${CHROMIUM}: install Debian's package \`chromium\` (apt-get install chromium)`);
}
const outDir = path.resolve(outArg);
mkdirSync(outDir, { recursive: true });
const pages = pageArgs.map((p) => path.resolve(p));
for (const p of pages) if (!existsSync(p)) usage(`no such page: ${p}`);

/// The report folder a page belongs to: the nearest folder at or above the page's own
/// that holds an index.html (the output root), else the page's own folder.
function reportRoot(page) {
  const own = path.dirname(page);
  for (let dir = own; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'index.html'))) return dir;
    if (path.dirname(dir) === dir) return own;
  }
}

function inside(root, file) {
  const rel = path.relative(root, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/// Whether a request may load: file: URLs inside the report folder, and the URLs that
/// never reach the network (inline data, about:blank).
function allowed(root, url) {
  if (url.startsWith('data:') || url === 'about:blank') return true;
  if (!url.startsWith('file:')) return false;
  try {
    return inside(root, fileURLToPath(url));
  } catch {
    return false;
  }
}

/// A file-name-safe name for a page's screenshots.
function slug(i, page) {
  const root = reportRoot(page);
  const rel = path.relative(path.dirname(root), page).replace(/\.html$/, '');
  return `${String(i + 1).padStart(2, '0')}-${rel.replace(/[^A-Za-z0-9_.-]+/g, '_')}`;
}

/// For each element of a locator: its bounding box in CSS pixels (what Playwright's
/// boundingBox() gives in a page without frames) and whether it is visible by
/// Playwright's definition (a non-empty box and no computed `visibility: hidden`;
/// `display: none` gives an empty box, and so does a closed <details> around it).
/// One round trip for all of them: a check per element would take seconds.
async function boxesOf(locator) {
  return locator.evaluateAll((els) =>
    els.map((el) => {
      const r = el.getBoundingClientRect();
      const visible =
        r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden' && el.checkVisibility();
      const caption = el.closest('figure')?.querySelector('figcaption')?.textContent?.trim() ?? '';
      return { visible, width: r.width, height: r.height, caption };
    }),
  );
}

async function checkMode(browser, page, kindHint, js, shot) {
  const root = reportRoot(page);
  const problems = [];
  const failedRequests = [];
  const consoleErrors = [];
  const pageErrors = [];
  const context = await browser.newContext({
    javaScriptEnabled: js,
    viewport: VIEWPORT,
    serviceWorkers: 'block',
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  // Cut the network: every routed request outside the report folder is aborted; every
  // request is also checked as it is made, in case one is not routed.
  const fail = (url, why) => {
    if (!failedRequests.some((f) => f.url === url)) failedRequests.push({ url, why });
  };
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (allowed(root, url)) return route.continue();
    fail(url, 'outside the report folder, blocked');
    return route.abort('blockedbyclient');
  });
  const tab = await context.newPage();
  tab.on('request', (req) => {
    if (!allowed(root, req.url())) fail(req.url(), 'outside the report folder, blocked');
  });
  tab.on('requestfailed', (req) => fail(req.url(), req.failure()?.errorText ?? 'failed'));
  tab.on('console', (msg) => {
    if (msg.type() === 'error') {
      const loc = msg.location();
      const where = loc?.url ? ` at ${loc.url}:${loc.lineNumber}` : '';
      consoleErrors.push(`${msg.text()}${where}`);
    }
  });
  tab.on('pageerror', (err) => pageErrors.push(String(err?.stack || err)));

  const result = { js, kind: kindHint, charts: 0, content: 0 };
  try {
    const response = await tab.goto(pathToFileURL(page).href, { waitUntil: 'load' });
    if (response && !response.ok()) problems.push(`load: status ${response.status()}`);
    const kind = await tab.evaluate(
      () => document.documentElement.dataset.page || document.body?.dataset.page || null,
    );
    if (kind) result.kind = kind;

    // Charts: every <svg> inside figure.chart, visible with a non-zero bounding box.
    const charts = tab.locator('figure.chart svg');
    const boxes = await boxesOf(charts);
    result.charts = boxes.length;
    boxes.forEach((b, i) => {
      if (!b.visible || b.width <= 0 || b.height <= 0) {
        problems.push(
          `chart ${i + 1}${b.caption ? ` (${b.caption.slice(0, 60)})` : ''} not visible: ` +
            `${b.width}x${b.height}${b.visible ? '' : ', hidden'}`,
        );
      }
    });
    const figuresWithoutSvg = await tab.locator('figure.chart:not(:has(svg))').count();
    if (figuresWithoutSvg > 0) problems.push(`${figuresWithoutSvg} figure.chart without an <svg>`);

    // Main content: at least one visible element.
    const [selector, what] =
      result.kind === 'index'
        ? ['#inputs tbody tr', 'inputs table row']
        : ['.stack ol.frames li', 'sample stack frame'];
    const content = await boxesOf(tab.locator(selector));
    result.content = content.filter((b) => b.visible && b.width > 0 && b.height > 0).length;
    if (result.content === 0) {
      problems.push(`no visible ${what} (${selector}; ${content.length} in the page)`);
    }

    const size = await tab.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      scrollHeight: document.documentElement.scrollHeight,
    }));
    result.pageSize = `${size.scrollWidth}x${size.scrollHeight}`;
    result.overflowsX = size.scrollWidth > VIEWPORT.width;

    await tab.screenshot({ path: shot, fullPage: true });
    result.screenshot = shot;
  } catch (err) {
    problems.push(`error: ${String(err?.message || err).split('\n')[0]}`);
  } finally {
    await context.close().catch(() => {});
  }
  for (const f of failedRequests) problems.push(`failed request: ${f.url} (${f.why})`);
  for (const c of consoleErrors) problems.push(`console error: ${c}`);
  for (const e of pageErrors) problems.push(`page error: ${e}`);
  result.failedRequests = failedRequests.map((f) => `${f.url} (${f.why})`);
  result.consoleErrors = consoleErrors;
  result.pageErrors = pageErrors;
  result.problems = problems;
  return result;
}

/// The pages of a PDF and, for each, whether it draws anything: the content streams of
/// every page object, inflated, must hold a text (Tj/TJ), image (Do) or path fill
/// operator. Chromium's PDFs are plain enough for this reading.
function pdfPages(pdf) {
  const text = pdf.toString('latin1');
  const objects = new Map();
  const objRe = /(\d+) 0 obj\b([\s\S]*?)endobj/g;
  for (let m; (m = objRe.exec(text)); ) objects.set(m[1], m[2]);
  const content = (ref) => {
    const body = objects.get(ref);
    if (!body) return '';
    const start = body.indexOf('stream');
    const end = body.lastIndexOf('endstream');
    if (start < 0 || end < 0) return '';
    let data = Buffer.from(body.slice(start + 6, end).replace(/^\r?\n/, ''), 'latin1');
    if (/\/FlateDecode/.test(body.slice(0, start))) {
      try {
        data = inflateSync(data);
      } catch {
        return '';
      }
    }
    return data.toString('latin1');
  };
  const pages = [];
  for (const body of objects.values()) {
    if (!/\/Type\s*\/Page\b(?!s)/.test(body)) continue;
    const refs = [];
    const c = /\/Contents\s*(?:\[([^\]]*)\]|(\d+) 0 R)/.exec(body);
    if (c) {
      if (c[2]) refs.push(c[2]);
      else for (const r of c[1].matchAll(/(\d+) 0 R/g)) refs.push(r[1]);
    }
    const ops = refs.map(content).join('\n');
    pages.push(/\bT[jJ]\b|\bDo\b|\bf\*?\b/.test(ops));
  }
  return pages;
}

/// The checks for readers, once per page (JavaScript on): layout at each width, the
/// verdict in the first screen, internal links, printing.
async function checkReaders(browser, page) {
  const problems = [];
  const url = pathToFileURL(page).href;
  const info = {};
  for (const width of LAYOUT_WIDTHS) {
    const context = await browser.newContext({ viewport: { width, height: 900 } });
    try {
      const tab = await context.newPage();
      await tab.goto(url, { waitUntil: 'load' });
      const sw = await tab.evaluate(() => document.documentElement.scrollWidth);
      const iw = await tab.evaluate(() => window.innerWidth);
      if (sw > iw) problems.push(`page overflows horizontally at ${width} px: scrollWidth ${sw} > ${iw}`);
    } finally {
      await context.close().catch(() => {});
    }
  }
  for (const viewport of FIRST_SCREENS) {
    const context = await browser.newContext({ viewport });
    try {
      const tab = await context.newPage();
      await tab.goto(url, { waitUntil: 'load' });
      const top = await tab.evaluate(() => {
        const v = document.querySelector('#verdict .headline, #observed .observed-text');
        return v ? v.getBoundingClientRect().top : null;
      });
      if (top === null) problems.push('no verdict on the page');
      else if (top >= viewport.height) {
        problems.push(`the verdict starts at ${Math.round(top)} px, below the first screen at ${viewport.width}x${viewport.height}`);
      }
    } finally {
      await context.close().catch(() => {});
    }
  }
  const context = await browser.newContext({ viewport: VIEWPORT });
  try {
    const tab = await context.newPage();
    await tab.goto(url, { waitUntil: 'load' });
    const hrefs = await tab.evaluate(() => [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')));
    const root = reportRoot(page);
    let checked = 0;
    for (const href of new Set(hrefs)) {
      if (/^[a-z]+:/i.test(href)) {
        problems.push(`link leaves the report folder: ${href}`);
        continue;
      }
      const [file, fragment] = href.split('#');
      const target = file ? path.resolve(path.dirname(page), decodeURIComponent(file)) : page;
      if (!inside(root, target) || !existsSync(target)) {
        problems.push(`broken link: ${href} (no file ${target})`);
        continue;
      }
      if (fragment) {
        const html = readFileSync(target, 'utf8');
        if (!html.includes(`id="${fragment}"`)) problems.push(`broken link: ${href} (no element #${fragment})`);
      }
      checked++;
    }
    info.links = checked;
    await tab.emulateMedia({ media: 'print' });
    const pdf = await tab.pdf({ format: 'A4', printBackground: true });
    const printed = pdfPages(pdf);
    info.pdfPages = printed.length;
    if (printed.length === 0) problems.push('printing to PDF gave no page');
    printed.forEach((drawn, i) => {
      if (!drawn) problems.push(`printed page ${i + 1} of ${printed.length} is blank`);
    });
  } catch (err) {
    problems.push(`reader checks: ${String(err?.message || err).split('\n')[0]}`);
  } finally {
    await context.close().catch(() => {});
  }
  return { problems, info };
}

// launch() starts Chromium on a fresh, temporary user-data dir; each page and mode
// gets its own context (no shared cookies, cache or storage).
let browser;
const launchStarted = Date.now();
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    timeout: 60_000,
  });
} catch (err) {
  console.error(`check-pages: cannot start ${CHROMIUM}: ${String(err?.message || err)}`);
  process.exit(2);
}

const launchMs = Date.now() - launchStarted;
let passed = 0;
const failures = [];
try {
  for (const [i, page] of pages.entries()) {
    const kindHint = path.basename(page) === 'index.html' ? 'index' : 'report';
    const name = slug(i, page);
    const modes = [];
    for (const js of [true, false]) {
      const started = Date.now();
      const shot = path.join(outDir, `${name}-${js ? 'js' : 'nojs'}.png`);
      const mode = await checkMode(browser, page, kindHint, js, shot);
      mode.ms = Date.now() - started;
      modes.push(mode);
    }
    const readers = await checkReaders(browser, page);
    const problems = modes
      .flatMap((m) => m.problems.map((p) => `[${m.js ? 'js' : 'no-js'}] ${p}`))
      .concat(readers.problems.map((p) => `[readers] ${p}`));
    const ok = problems.length === 0;
    console.log(
      JSON.stringify({
        page,
        kind: modes[0].kind,
        ok,
        js: modes[0],
        nojs: modes[1],
        readers: readers.info,
        problems,
      }),
    );
    if (ok) passed++;
    else failures.push({ page, problems });
  }
} finally {
  await browser.close().catch(() => {});
}

if (failures.length > 0) {
  console.error('check-pages: problems:');
  for (const f of failures) {
    for (const p of f.problems) console.error(`  ${f.page}: ${p}`);
  }
}
console.error(`check-pages: browser started in ${launchMs} ms`);
console.log(`${passed} passed, ${failures.length} failed`);
process.exit(failures.length > 0 ? 1 : 0);
