// The waiting-room board: server-sent events from /api/board/stream redraw it whenever the queue
// moves; a new call is shown large and spoken (when the screen has a Chinese voice). Only queue
// numbers and masked names ever reach this page. Elements are built with DOM calls, never innerHTML.

const params = new URLSearchParams(location.search);
const query = new URLSearchParams();
for (const key of ["department", "zone"]) if (params.get(key)) query.set(key, params.get(key));
const $ = (id) => document.getElementById(id);
let lastCall = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "testid") node.dataset.testid = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child != null) node.append(child);
  return node;
}

function draw(board) {
  $("departments").replaceChildren(...board.departments.map((d) => el("section", { class: "department", testid: `board-${d.department_code}` },
    el("h2", {}, d.name),
    el("div", { class: "calling" }, el("h3", {}, "请就诊"),
      d.calling.length ? el("ul", {}, d.calling.map((c) => el("li", { testid: "board-calling" },
        el("span", { class: "no" }, `${c.queue_no} 号`), el("span", { class: "name" }, c.masked_name),
        el("span", { class: "room" }, c.room)))) : el("p", { class: "empty" }, "—")),
    el("div", { class: "waiting" }, el("h3", {}, `候诊 ${d.waiting_count} 人`),
      el("ol", {}, d.waiting.map((w) => el("li", { testid: "board-waiting" },
        el("span", { class: "no" }, `${w.queue_no} 号`), el("span", { class: "name" }, w.masked_name))))),
    d.missed.length ? el("p", { class: "missed" }, `过号：${d.missed.map((m) => `${m.queue_no} 号`).join("、")}（请到分诊台重新报到）`) : null)));
  const latest = board.calls[0];
  if (latest && latest.id !== lastCall) {
    const fresh = lastCall !== null;
    lastCall = latest.id;
    $("announce").textContent = latest.text;
    if (fresh) speak(latest.text);
  }
}

function speak(text) {
  if (!("speechSynthesis" in window)) return;
  const voice = speechSynthesis.getVoices().find((v) => v.lang && v.lang.toLowerCase().startsWith("zh"));
  if (!voice) return;
  const utterance = new SpeechSynthesisUtterance(text.replace(/\*/g, "某"));  // 张*明 reads as 张某明
  utterance.voice = voice;
  utterance.lang = voice.lang;
  speechSynthesis.speak(utterance);
  speechSynthesis.speak(utterance);  // a call is said twice, as in every waiting room
}

function tick() {
  const now = new Date();
  $("clock").textContent = now.toLocaleTimeString("zh-CN", { hour12: false });
}

function connect() {
  const source = new EventSource(`/api/board/stream?${query}`);
  source.addEventListener("board", (event) => {
    draw(JSON.parse(event.data));
    $("status").textContent = "";
  });
  source.addEventListener("error", () => { $("status").textContent = "连接中断，正在重新连接…"; });
}

setInterval(tick, 1000);
tick();
connect();
