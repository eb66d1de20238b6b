// The comparison page: one query, four retrieval methods side by side.
//
// It calls POST /compare with every method (one round trip gives each column and the overlap figures). When
// a backend is unavailable (a 503 naming it) it asks POST /search per method instead, so that the methods
// that can answer still fill their columns, and POST /compare again over those for the overlap. When the
// service has a reranker (GET /index names it), a fifth column shows Hybrid with its top results reordered by
// the cross-encoder (POST /search with "rerank": true); the overlap figures stay those of the four methods.
//
// Every piece of text that comes from the user or the server is put into the page with textContent or text
// nodes, never as HTML.
"use strict";

(() => {
  const METHODS = [
    { id: "lsi", label: "LSI" },
    { id: "bm25", label: "BM25" },
    { id: "dense", label: "Dense" },
    { id: "hybrid", label: "Hybrid" },
  ];
  const RERANKED = "reranked";
  const LABELS = { ...Object.fromEntries(METHODS.map((m) => [m.id, m.label])), [RERANKED]: "Reranked" };
  const MAX_QUERY_CHARS = 1000;
  const MAX_RESULTS = 100;
  const DEFAULT_K = 10;
  const IDLE_TEXT = "Results appear here.";

  // The keyword analyzer's stop words (scikit-learn's English list): these words are never highlighted.
  const STOP_WORDS = new Set((
    "a about above across after afterwards again against all almost alone along already also although always " +
    "am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere are around as " +
    "at back be became because become becomes becoming been before beforehand behind being below beside " +
    "besides between beyond bill both bottom but by call can cannot cant co con could couldnt cry de describe " +
    "detail do done down due during each eg eight either eleven else elsewhere empty enough etc even ever " +
    "every everyone everything everywhere except few fifteen fifty fill find fire first five for former " +
    "formerly forty found four from front full further get give go had has hasnt have he hence her here " +
    "hereafter hereby herein hereupon hers herself him himself his how however hundred i ie if in inc indeed " +
    "interest into is it its itself keep last latter latterly least less ltd made many may me meanwhile might " +
    "mill mine more moreover most mostly move much must my myself name namely neither never nevertheless next " +
    "nine no nobody none noone nor not nothing now nowhere of off often on once one only onto or other others " +
    "otherwise our ours ourselves out over own part per perhaps please put rather re same see seem seemed " +
    "seeming seems serious several she should show side since sincere six sixty so some somehow someone " +
    "something sometime sometimes somewhere still such system take ten than that the their them themselves " +
    "then thence there thereafter thereby therefore therein thereupon these they thick thin third this those " +
    "though three through throughout thru thus to together too top toward towards twelve twenty two un under " +
    "until up upon us very via was we well were what whatever when whence whenever where whereafter whereas " +
    "whereby wherein whereupon wherever whether which while whither who whoever whole whom whose why will " +
    "with within without would yet you your yours yourself yourselves"
  ).split(" "));

  const form = document.getElementById("search-form");
  const queryInput = document.getElementById("q");
  const kSelect = document.getElementById("k");
  const groupBox = document.getElementById("group");
  const tagList = document.getElementById("tag-list");
  const message = document.getElementById("message");
  const statusLine = document.getElementById("status");
  const overlapLine = document.getElementById("overlap");
  const columnsBox = document.getElementById("columns");

  let reranker = null; // the cross-encoder's name when the service has one (GET /index)
  let selectedTags = new Set();
  let tagsLoaded = false;
  let current = null; // {token, controller} of the comparison in flight
  let nextToken = 0;

  // ---------------------------------------------------------------- helpers that build DOM nodes

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function column(method) {
    return columnsBox.querySelector(`.column[data-method="${method}"]`);
  }

  function part(col, role) {
    return col.querySelector(`[data-role="${role}"]`);
  }

  function codePoints(text) {
    return Array.from(text).length; // the API counts characters, not UTF-16 units
  }

  function formatMs(ms) {
    return ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
  }

  function formatScore(score) {
    if (!Number.isFinite(score)) return String(score);
    const magnitude = Math.abs(score);
    if (magnitude >= 100) return score.toFixed(1);
    if (magnitude >= 1) return score.toFixed(2);
    return Math.abs(score) < 0.0005 ? "0.000" : score.toFixed(3);
  }

  function listJoin(items) {
    if (items.length <= 1) return items.join("");
    return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
  }

  // ---------------------------------------------------------------- query-term highlighting

  // A light suffix stripper: enough that "optimizers", "optimizer" and "optimization" meet.
  function stem(word) {
    let w = word.toLowerCase().replace(/'s$/, "");
    for (let round = 0; round < 2; round += 1) {
      const before = w;
      for (const [suffix, replacement] of [
        ["ational", "ate"], ["ization", "ize"], ["ation", ""], ["ingly", ""], ["edly", ""], ["ings", ""],
        ["ing", ""], ["ies", "y"], ["ers", ""], ["er", ""], ["es", ""], ["ed", ""], ["ly", ""], ["s", ""],
        ["e", ""],
      ]) {
        if (w.endsWith(suffix) && w.length - suffix.length + replacement.length >= 4) {
          w = w.slice(0, w.length - suffix.length) + replacement;
          break;
        }
      }
      if (w === before) break;
    }
    if (/([^aeiouls])\1$/.test(w) && w.length > 4) w = w.slice(0, -1); // "embedd" -> "embed"
    return w;
  }

  function queryStems(query) {
    const stems = new Set();
    for (const word of query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []) {
      if (word.length < 2 || STOP_WORDS.has(word)) continue;
      stems.add(stem(word));
    }
    return stems;
  }

  // Fill `node` with `text`, wrapping the words that match a query term in <mark> (text nodes only).
  function appendHighlighted(node, text, stems) {
    const word = /[\p{L}\p{N}]+/gu;
    let last = 0;
    let match;
    while ((match = word.exec(text)) !== null) {
      const token = match[0];
      if (token.length >= 2 && !STOP_WORDS.has(token.toLowerCase()) && stems.has(stem(token))) {
        if (match.index > last) node.appendChild(document.createTextNode(text.slice(last, match.index)));
        node.appendChild(el("mark", null, token));
        last = match.index + token.length;
      }
    }
    if (last < text.length) node.appendChild(document.createTextNode(text.slice(last)));
  }

  // Fill `node` with Markdown-ish `text`: ```fenced``` blocks become <pre><code>, `code` <code>, **bold** <strong>,
  // *emphasis* and _emphasis_ <em>. Every piece of text goes in as a text node (query words still marked).
  function appendFormatted(node, text, stems) {
    // The info string is a word on the fence's own line, or a common language name before a space (snippets
    // fold lines, so "```python x = 1```" is code in Python, not a language called "python x = 1").
    const fence = /```(?:[\w+#.-]*\n|(?:python|py|bash|sh|shell|console|js|javascript|ts|typescript|json|yaml|yml|toml|sql|text|r|julia|c|cpp|java|go|rust) )?([\s\S]*?)(?:```|$)/g;
    let last = 0;
    let match;
    while ((match = fence.exec(text)) !== null) {
      if (match.index > last) appendInline(node, text.slice(last, match.index), stems);
      const pre = el("pre", "code-block");
      pre.appendChild(el("code", null, match[1].replace(/\n$/, "")));
      node.appendChild(pre);
      last = match.index + match[0].length;
      if (match[0].length === 0) fence.lastIndex += 1;
    }
    if (last < text.length) appendInline(node, text.slice(last), stems);
  }

  function appendInline(node, text, stems) {
    const inline = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|(?<![\w*])\*([^*\s][^*\n]*?)\*(?![\w*])|(?<![\w_])_([^_\s][^_\n]*?)_(?![\w_])/g;
    let last = 0;
    let match;
    while ((match = inline.exec(text)) !== null) {
      if (match.index > last) appendHighlighted(node, text.slice(last, match.index), stems);
      if (match[1] !== undefined) {
        node.appendChild(el("code", null, match[1]));
      } else {
        const wrapper = el(match[2] !== undefined ? "strong" : "em");
        appendHighlighted(wrapper, match[2] ?? match[3] ?? match[4], stems);
        node.appendChild(wrapper);
      }
      last = match.index + match[0].length;
    }
    if (last < text.length) appendHighlighted(node, text.slice(last), stems);
  }

  // Where the passage is: the PDF page, the notebook cell, or the page's URL (a link only for http and https).
  function locationNode(hit) {
    const where = el("p", "location");
    const parts = [];
    if (hit.source_type) parts.push(hit.source_type.toUpperCase() === "PDF" ? "PDF" : hit.source_type);
    if (hit.page !== null && hit.page !== undefined) parts.push(`page ${hit.page}`);
    if (hit.cell !== null && hit.cell !== undefined) parts.push(`cell ${hit.cell}`);
    if (parts.length) where.appendChild(document.createTextNode(parts.join(" · ")));
    if (hit.url) {
      let link = null;
      try {
        const url = new URL(hit.url);
        if (url.protocol === "http:" || url.protocol === "https:") {
          link = el("a", null, hit.url);
          link.href = url.href;
          link.rel = "noopener noreferrer";
        }
      } catch (error) {
        link = null;
      }
      if (parts.length) where.appendChild(document.createTextNode(" · "));
      where.appendChild(link || el("span", null, hit.url));
    }
    if (hit.other_matches) {
      const more = hit.other_matches === 1 ? "1 more match" : `${hit.other_matches} more matches`;
      where.appendChild(el("span", "more", ` · ${more} in this document`));
    }
    return where.childNodes.length ? where : null;
  }

  // ---------------------------------------------------------------- messages

  function showMessage(text, detail) {
    message.replaceChildren(el("strong", null, text));
    if (detail) message.appendChild(el("span", "detail", ` ${detail}`));
    message.hidden = false;
  }

  function clearMessage() {
    message.hidden = true;
    message.replaceChildren();
  }

  /** Empty a column and show one status line in it, marked as failed or not. */
  function showColumnStatus(method, text, failed) {
    const col = column(method);
    col.classList.toggle("failed", failed);
    col.removeAttribute("aria-busy");
    part(col, "results").replaceChildren();
    part(col, "latency").textContent = "";
    part(col, "status").textContent = text;
    part(col, "status").hidden = false;
  }

  function resetColumns(text) {
    for (const { id } of METHODS) showColumnStatus(id, text, false);
    if (reranker) showColumnStatus(RERANKED, text, false);
    overlapLine.hidden = true;
    overlapLine.replaceChildren();
  }

  // ---------------------------------------------------------------- URL <-> form

  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const tags = params.getAll("tags").flatMap((v) => v.split(",")).map((t) => t.trim()).filter(Boolean);
    let k = DEFAULT_K;
    let kProblem = null;
    if (params.has("k")) {
      const raw = params.get("k");
      const value = Number(raw);
      if (/^\d+$/.test(raw) && value >= 1 && value <= MAX_RESULTS) k = value;
      else kProblem = `The link's k=${raw} is not a whole number from 1 to ${MAX_RESULTS}; showing ${DEFAULT_K} results.`;
    }
    return { q: params.get("q") || "", k, tags, kProblem, group: params.get("group") === "document" };
  }

  function currentK() {
    return Number(kSelect.value) || DEFAULT_K;
  }

  function setK(k) {
    if (!Array.from(kSelect.options).some((o) => Number(o.value) === k)) {
      const option = el("option", null, String(k));
      option.value = String(k);
      const after = Array.from(kSelect.options).find((o) => Number(o.value) > k);
      kSelect.insertBefore(option, after || null);
    }
    kSelect.value = String(k);
  }

  function writeUrl() {
    const params = new URLSearchParams();
    const q = queryInput.value;
    if (q) params.set("q", q);
    if (currentK() !== DEFAULT_K || q) params.set("k", String(currentK()));
    if (selectedTags.size) params.set("tags", Array.from(selectedTags).sort().join(","));
    if (groupBox && groupBox.checked) params.set("group", "document");
    const search = params.toString().replace(/%2C/gi, ","); // commas need no escaping; keep links readable
    const url = `${window.location.pathname}${search ? `?${search}` : ""}${window.location.hash}`;
    window.history.replaceState(null, "", url);
  }

  // ---------------------------------------------------------------- tags

  function renderTags(tags) {
    tagList.replaceChildren();
    if (!tags.length) {
      tagList.appendChild(el("span", "muted", "This index has no tags."));
      return;
    }
    for (const tag of tags) {
      const id = `tag-${tag.replace(/[^\w-]/g, "_")}`;
      const box = el("input");
      box.type = "checkbox";
      box.id = id;
      box.value = tag;
      box.checked = selectedTags.has(tag);
      box.addEventListener("change", () => {
        if (box.checked) selectedTags.add(tag);
        else selectedTags.delete(tag);
        writeUrl();
        if (queryInput.value.trim()) compare();
      });
      const label = el("label", "tag", tag);
      label.htmlFor = id;
      const chip = el("span", "tag-chip");
      chip.append(box, label);
      tagList.appendChild(chip);
    }
    // tags named in a link but unknown to this index are kept (the server filters on them) and shown
    for (const tag of selectedTags) {
      if (!tags.includes(tag)) tagList.appendChild(el("span", "muted", ` (${tag}: not in this index)`));
    }
  }

  // The reranked column is shown only when the service has a cross-encoder configured.
  async function loadReranker() {
    try {
      const response = await fetch("/index", { headers: { Accept: "application/json" } });
      const data = await response.json().catch(() => null);
      if (!response.ok || !data || !data.reranker) return;
      reranker = data.reranker;
      const col = column(RERANKED);
      col.hidden = false;
      columnsBox.classList.add("with-reranker");
      part(col, "kind").title = `Cross-encoder: ${reranker}`;
    } catch (error) {
      // no reranked column: the four methods work without it
    }
  }

  // One extra request: Hybrid with its head reranked, rendered beside the four methods' columns.
  async function rerankedColumn(run, query, k, filters, group_by, maps, stems) {
    if (!reranker) return;
    const col = column(RERANKED);
    col.setAttribute("aria-busy", "true");
    let reply;
    try {
      reply = await postJson("/search", { query, k, method: "hybrid", rerank: true, filters, group_by },
        run.controller.signal);
    } catch (error) {
      if (error.name === "AbortError" || stale(run)) return;
      renderFailedColumn(RERANKED, `Unavailable: ${NETWORK_MESSAGE[0]}`);
      return;
    }
    if (stale(run)) return;
    if (!reply.ok) {
      const [text, detail] = errorText(reply);
      renderFailedColumn(RERANKED, `Unavailable: ${detail || text}`);
      return;
    }
    const results = reply.data.results;
    const withReranked = { ...maps, [RERANKED]: new Map(results.map((hit) => [hit.id, hit.rank])) };
    renderColumn(RERANKED, { took_ms: reply.data.took_ms, results }, withReranked, stems);
  }

  async function loadTags() {
    try {
      const response = await fetch("/tags", { headers: { Accept: "application/json" } });
      const data = await response.json().catch(() => null);
      if (!response.ok || !data || !Array.isArray(data.tags)) throw new Error(data && data.detail);
      renderTags(data.tags);
      tagsLoaded = true;
    } catch (error) {
      const reason = error && error.message ? ` (${error.message})` : "";
      tagList.replaceChildren(el("span", "muted", `Tags could not be loaded${reason}.`));
    }
  }

  // ---------------------------------------------------------------- talking to the API

  class NetworkError extends Error {}

  async function postJson(path, body, signal) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new NetworkError(error.message);
    }
    const data = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, statusText: response.statusText, data };
  }

  function errorText(reply) {
    const data = reply.data || {};
    const detail = typeof data.detail === "string" ? data.detail : reply.statusText;
    if (reply.status === 422) return ["The query was not accepted.", detail];
    if (reply.status === 503 && data.error === "backend_unavailable") {
      return [`The ${data.backend || "search"} backend is unavailable.`, detail];
    }
    if (reply.status === 503) return ["The search service is not ready.", detail];
    if (reply.status === 413) return ["The request is too large.", detail];
    return [`The search service answered ${reply.status}.`, detail];
  }

  const NETWORK_MESSAGE = [
    "Cannot reach the search service.",
    "Check that `mlsearch serve` is running, then press Enter to try again.",
  ];

  // ---------------------------------------------------------------- rendering results

  function rankMaps(runs) {
    const maps = {};
    for (const [method, run] of Object.entries(runs)) {
      maps[method] = new Map(run.results.map((hit) => [hit.id, hit.rank]));
    }
    return maps;
  }

  function deltaBadge(method, other, rank, otherRank) {
    const item = el("li", "delta");
    const name = LABELS[other] || other;
    let shown;
    let spoken;
    if (otherRank === undefined) {
      item.classList.add("new");
      shown = `${name} new`;
      spoken = `not in ${name}'s top results`;
    } else if (otherRank === rank) {
      item.classList.add("same");
      shown = `${name} =`;
      spoken = `same rank in ${name}`;
    } else if (otherRank > rank) {
      item.classList.add("up");
      shown = `${name} ↑${otherRank - rank}`;
      spoken = `${otherRank - rank} higher than in ${name} (rank ${otherRank} there)`;
    } else {
      item.classList.add("down");
      shown = `${name} ↓${rank - otherRank}`;
      spoken = `${rank - otherRank} lower than in ${name} (rank ${otherRank} there)`;
    }
    item.dataset.other = other;
    item.title = `Rank ${rank} in ${LABELS[method]}; ${otherRank === undefined ? `not in ${name}'s top k` : `rank ${otherRank} in ${name}`}`;
    const visible = el("span", null, shown);
    visible.setAttribute("aria-hidden", "true");
    item.append(visible, el("span", "sr-only", spoken));
    return item;
  }

  function renderHit(method, hit, maps, stems) {
    const item = el("li", "result");
    item.dataset.chunkId = hit.id;
    item.dataset.rank = String(hit.rank);

    const head = el("div", "result-head");
    const rank = el("span", "rank", String(hit.rank));
    rank.title = `Rank ${hit.rank}`;
    const titles = el("div", "titles");
    const title = el("h3", "title", hit.title || hit.doc_id);
    title.title = hit.doc_id;
    titles.appendChild(title);
    if (hit.heading) titles.appendChild(el("p", "heading", hit.heading.split(" > ").join(" › ")));
    const score = el("span", "score", formatScore(hit.score));
    score.title = `${LABELS[method]} score ${hit.score}`;
    head.append(rank, titles, score);

    const snippet = el("div", "snippet");
    appendFormatted(snippet, hit.snippet || "", stems);
    const where = locationNode(hit);

    const deltas = el("ul", "deltas");
    deltas.setAttribute("aria-label", "Rank in the other columns");
    let elsewhere = 0;
    for (const other of Object.keys(maps)) {
      if (other === method) continue;
      const otherRank = maps[other].get(hit.id);
      if (otherRank !== undefined) elsewhere += 1;
      deltas.appendChild(deltaBadge(method, other, hit.rank, otherRank));
    }
    if (Object.keys(maps).length > 1 && elsewhere === 0) item.classList.add("only-here");

    const passage = el("details", "passage");
    passage.append(el("summary", null, "Whole passage"));
    const full = el("div");
    appendFormatted(full, hit.text || "", stems);
    passage.appendChild(full);

    item.append(head, ...(where ? [where] : []), snippet, deltas, passage);
    return item;
  }

  function renderColumn(method, run, maps, stems) {
    const col = column(method);
    col.classList.remove("failed");
    col.removeAttribute("aria-busy");
    part(col, "latency").textContent = formatMs(run.took_ms);
    part(col, "latency").title = `${LABELS[method]} took ${run.took_ms} ms on the server`;
    const list = part(col, "results");
    list.replaceChildren(...run.results.map((hit) => renderHit(method, hit, maps, stems)));
    const status = part(col, "status");
    status.textContent = run.results.length ? "" : "No results.";
    status.hidden = run.results.length > 0;
  }

  function renderFailedColumn(method, text) {
    showColumnStatus(method, text, true);
  }

  function renderOverlap(overlap, methods, k) {
    overlapLine.replaceChildren();
    const names = methods.map((m) => LABELS[m]);
    const shared = overlap.shared_ids.length;
    const who = methods.length === METHODS.length ? "All four methods" : listJoin(names);
    overlapLine.append(
      el("strong", null, `Overlap at k=${k}: `),
      document.createTextNode(
        `${who} agree on ${shared} result${shared === 1 ? "" : "s"} ` +
        `(Jaccard ${overlap.jaccard_at_k.toFixed(2)}). Pairwise Jaccard: `,
      ),
    );
    const pairs = Object.entries(overlap.pairwise_jaccard);
    pairs.forEach(([key, value], i) => {
      const [a, b] = key.split("|");
      const pair = el("span", "pair", `${LABELS[a] || a}–${LABELS[b] || b} ${value.toFixed(2)}`);
      pair.dataset.pair = key;
      overlapLine.append(pair, document.createTextNode(i < pairs.length - 1 ? " · " : "."));
    });
    const alone = Object.entries(overlap.only_in || {}).filter(([, ids]) => ids.length);
    if (alone.length) {
      overlapLine.append(document.createTextNode(
        ` Found by one method only: ${alone.map(([m, ids]) => `${LABELS[m] || m} ${ids.length}`).join(", ")}.`,
      ));
    }
    overlapLine.dataset.jaccard = String(overlap.jaccard_at_k);
    overlapLine.hidden = false;
  }

  // ---------------------------------------------------------------- one comparison

  function validate(query) {
    if (!query.trim()) return ["Type a query first.", "It must be 1 to 1,000 characters and not only spaces."];
    const length = codePoints(query);
    if (length > MAX_QUERY_CHARS) {
      return [
        "The query is too long.",
        `It has ${length.toLocaleString("en")} characters; the limit is ${MAX_QUERY_CHARS.toLocaleString("en")}.`,
      ];
    }
    return null;
  }

  function begin() {
    if (current) current.controller.abort();
    current = { token: (nextToken += 1), controller: new AbortController() };
    return current;
  }

  function stale(run) {
    return current !== run;
  }

  async function compare() {
    const query = queryInput.value;
    const k = currentK();
    const tags = Array.from(selectedTags).sort();
    writeUrl();
    const problem = validate(query);
    if (problem) {
      if (current) current.controller.abort();
      current = null;
      document.body.classList.remove("busy");
      resetColumns(IDLE_TEXT);
      statusLine.textContent = "";
      showMessage(...problem);
      queryInput.setAttribute("aria-invalid", "true");
      queryInput.focus();
      return;
    }
    queryInput.removeAttribute("aria-invalid");
    const run = begin();
    const filters = tags.length ? { tags } : undefined;
    const group_by = groupBox && groupBox.checked ? "document" : undefined;
    const started = performance.now();
    clearMessage();
    statusLine.textContent = "Searching…";
    document.body.classList.add("busy");
    for (const { id } of METHODS) column(id).setAttribute("aria-busy", "true");
    const methods = METHODS.map((m) => m.id);
    try {
      const reply = await postJson("/compare", { query, k, methods, filters, group_by }, run.controller.signal);
      if (stale(run)) return;
      if (reply.ok) {
        const data = reply.data;
        const stems = queryStems(query);
        const maps = rankMaps(data.runs);
        for (const method of methods) renderColumn(method, data.runs[method], maps, stems);
        renderOverlap(data.overlap, methods, k);
        await rerankedColumn(run, query, k, filters, group_by, maps, stems);
        if (stale(run)) return;
        finish(run, query, started, methods.length);
      } else if (reply.status === 503 && reply.data && reply.data.error === "backend_unavailable") {
        await compareEachMethod(run, query, k, filters, started, group_by);
      } else {
        fail(run, errorText(reply));
      }
    } catch (error) {
      if (error.name === "AbortError" || stale(run)) return;
      fail(run, error instanceof NetworkError ? NETWORK_MESSAGE : ["Something went wrong.", String(error)]);
    }
  }

  // The degraded path: some backend is down, so ask each method alone and fill what can be filled.
  async function compareEachMethod(run, query, k, filters, started, group_by) {
    const methods = METHODS.map((m) => m.id);
    const replies = await Promise.all(methods.map((method) =>
      postJson("/search", { query, k, method, filters, group_by }, run.controller.signal)
        .then((reply) => ({ method, reply }), (error) => ({ method, error }))));
    if (stale(run)) return;
    const runs = {};
    const failures = [];
    for (const { method, reply, error } of replies) {
      if (error && error.name === "AbortError") return;
      if (reply && reply.ok) runs[method] = { took_ms: reply.data.took_ms, results: reply.data.results };
      else failures.push({ method, text: error ? NETWORK_MESSAGE : errorText(reply) });
    }
    const answered = Object.keys(runs);
    if (!answered.length) {
      fail(run, failures[0].text);
      return;
    }
    const stems = queryStems(query);
    const maps = rankMaps(runs);
    for (const method of answered) renderColumn(method, runs[method], maps, stems);
    for (const { method, text } of failures) renderFailedColumn(method, `Unavailable: ${text[1] || text[0]}`);
    if (reranker) renderFailedColumn(RERANKED, "Not shown while a backend is unavailable.");
    const names = failures.map((f) => LABELS[f.method]);
    showMessage(
      `${listJoin(names)} could not answer; the other columns are shown.`,
      failures[0].text[1] || failures[0].text[0],
    );
    overlapLine.hidden = true;
    if (answered.length >= 2) {
      try {
        const reply = await postJson("/compare", { query, k, methods: answered, filters, group_by },
          run.controller.signal);
        if (stale(run)) return;
        if (reply.ok) renderOverlap(reply.data.overlap, answered, k);
      } catch (error) {
        if (error.name === "AbortError" || stale(run)) return;
      }
    }
    finish(run, query, started, answered.length);
  }

  function finish(run, query, started, answered) {
    if (!tagsLoaded) loadTags(); // the service was not ready when the page loaded
    const elapsed = performance.now() - started;
    statusLine.textContent =
      `${answered} of ${METHODS.length} methods answered “${query.length > 80 ? `${query.slice(0, 80)}…` : query}” ` +
      `in ${formatMs(elapsed)} (round trip).`;
    document.body.classList.remove("busy");
    current = null;
  }

  function fail(run, [text, detail]) {
    resetColumns("No results: see the message above.");
    statusLine.textContent = "";
    showMessage(text, detail);
    document.body.classList.remove("busy");
    if (current === run) current = null;
  }

  // ---------------------------------------------------------------- wiring

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    compare();
  });
  // Enter submits from every control (a select or a checkbox does not do it on its own).
  form.addEventListener("keydown", (event) => {
    const target = event.target;
    if (event.key !== "Enter" || event.isComposing) return;
    if (target instanceof HTMLSelectElement || (target instanceof HTMLInputElement && target.type === "checkbox")) {
      event.preventDefault();
      compare();
    }
  });
  queryInput.addEventListener("input", () => {
    queryInput.removeAttribute("aria-invalid");
    writeUrl();
  });
  kSelect.addEventListener("change", () => {
    writeUrl();
    if (queryInput.value.trim()) compare();
  });
  if (groupBox) {
    groupBox.addEventListener("change", () => {
      writeUrl();
      if (queryInput.value.trim()) compare();
    });
  }

  function start() {
    const { q, k, tags, kProblem, group } = readUrl();
    queryInput.value = q;
    if (groupBox) groupBox.checked = group;
    setK(k);
    selectedTags = new Set(tags);
    loadTags();
    if (!q) writeUrl();
    loadReranker().finally(() => {
      if (q && !current) compare();
      if (kProblem) showMessage("The link's k was changed.", kProblem);
    });
  }

  start();
})();
