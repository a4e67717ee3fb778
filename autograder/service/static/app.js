// The student's page: upload by drop or chooser, then the status, result and history update
// themselves from the JSON API. Every value is written with textContent (never as HTML).
"use strict";
(function () {
  const page = document.getElementById("page");
  if (!page) return;
  const assignment = page.dataset.assignment;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const drop = document.getElementById("drop");
  const chooser = document.getElementById("file");
  const note = document.getElementById("upload-message");
  let selected = null;
  let uploads = [];

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function points(score, max) {
    if (score === null || score === undefined) return "";
    return `${+score.toFixed(2)} / ${+(max || 0).toFixed(2)}`;
  }
  function statusText(u) {
    if (u.status === "queued") return u.position ? `Queued: place ${u.position} in the queue` : "Queued";
    if (u.status === "running") return "Being graded…";
    if (u.status === "graded") return u.timed_out ? "Graded (stopped at a time limit)" : "Graded";
    if (u.status === "rejected") return "Rejected";
    return "Could not be graded";
  }

  async function upload(file) {
    if (!file) return;
    note.className = "message";
    note.textContent = `Uploading ${file.name}…`;
    const form = new FormData();
    form.append("assignment", assignment);
    form.append("file", file, file.name);
    try {
      const answer = await fetch("/api/submissions", {
        method: "POST", body: form, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf },
      });
      const body = await answer.json().catch(() => ({}));
      if (answer.status === 202) {
        note.textContent = `${file.name} was uploaded; its result appears below.`;
        selected = body.id;
        await refresh();
      } else {
        note.className = "message error";
        note.textContent = body.error || `The upload failed (HTTP ${answer.status}).`;
      }
    } catch (error) {
      note.className = "message error";
      note.textContent = "The upload did not reach the server; check your connection and try again.";
    }
    chooser.value = "";
  }

  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]);
  });
  chooser.addEventListener("change", () => upload(chooser.files[0]));

  function showCurrent(u) {
    const box = document.getElementById("current");
    if (!u) { box.hidden = true; return; }
    box.hidden = false;
    box.dataset.id = u.id;
    box.dataset.status = u.status;
    document.getElementById("current-name").textContent = `${u.file_name} (${u.created})`;
    const status = document.getElementById("current-status");
    status.textContent = statusText(u) + (u.counts ? " · this upload counts" : "");
    status.className = `status ${u.status}`;
    const score = document.getElementById("current-score");
    score.textContent = u.total !== null ? `${points(u.total, u.total_max)} points` : "";
    if (u.public_accuracy !== null) score.textContent += ` · public accuracy ${u.public_accuracy.toFixed(3)}`;
    const message = document.getElementById("current-message");
    message.textContent = u.message || (u.status === "graded" ? "Full marks." : "");
    const feedback = document.getElementById("current-feedback");
    feedback.hidden = !u.feedback;
    if (u.feedback) feedback.href = u.feedback;
    const body = document.querySelector("#parts tbody");
    body.replaceChildren();
    for (const part of u.parts) {
      const row = el("tr");
      row.append(el("td", part.name));
      row.append(el("td", points(part.score, part.max), part.score >= part.max ? "full" : "lost"));
      row.append(el("td", part.message));
      body.append(row);
    }
    document.getElementById("parts").hidden = u.parts.length === 0;
  }

  function showHistory() {
    const body = document.querySelector("#history tbody");
    body.replaceChildren();
    document.getElementById("no-uploads").hidden = uploads.length > 0;
    for (const u of uploads) {
      const row = el("tr", null, "selectable" + (u.id === selected ? " selected" : ""));
      row.dataset.id = u.id;
      row.append(el("td", (u.created || "").replace("T", " ").replace("Z", "")));
      row.append(el("td", u.file_name));
      row.append(el("td", statusText(u), u.status));
      row.append(el("td", points(u.total, u.total_max)));
      row.append(el("td", u.public_accuracy !== null ? u.public_accuracy.toFixed(3) : ""));
      const mark = el("td");
      if (u.counts) mark.append(el("span", "counts", "badge"));
      row.append(mark);
      row.addEventListener("click", () => { selected = u.id; render(); });
      body.append(row);
    }
  }

  function render() {
    if (!selected && uploads.length) selected = uploads[0].id;
    showHistory();
    showCurrent(uploads.find((u) => u.id === selected));
  }

  async function refresh() {
    const answer = await fetch("/api/submissions", { credentials: "same-origin" });
    if (answer.status === 401) { window.location = "/login"; return; }
    if (!answer.ok) return;
    uploads = await answer.json();
    const today = new Date().toISOString().slice(0, 10);
    const used = uploads.filter((u) => (u.created || "").startsWith(today)).length;
    document.getElementById("left").textContent = Math.max(+page.dataset.cap - used, 0);
    render();
  }

  async function refreshBoard() {
    const answer = await fetch(`/api/leaderboard/${encodeURIComponent(assignment)}`, { credentials: "same-origin" });
    if (!answer.ok) return;
    const body = document.querySelector("#leaderboard tbody");
    body.replaceChildren();
    (await answer.json()).forEach((entry, index) => {
      const row = el("tr", null, entry.you ? "you" : "");
      row.append(el("td", index + 1));
      row.append(el("td", entry.pseudonym + (entry.you ? " (you)" : "")));
      row.append(el("td", entry.public_accuracy.toFixed(3)));
      body.append(row);
    });
  }

  async function loop() {
    try { await refresh(); await refreshBoard(); } catch (error) { /* try again */ }
    const waiting = uploads.some((u) => u.status === "queued" || u.status === "running");
    setTimeout(loop, waiting ? 1500 : 8000);
  }
  loop();
})();
