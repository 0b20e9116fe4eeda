// Spoken guidance through the browser's speech synthesis, only when it has a Chinese voice.
// Without one (headless test browsers, kiosks without voices) every call is silently skipped.

let voice = null;

function pickVoice() {
  if (!("speechSynthesis" in window)) return;
  const voices = window.speechSynthesis.getVoices();
  voice = voices.find((v) => /^zh[-_]CN/i.test(v.lang))
    || voices.find((v) => /^zh/i.test(v.lang) && !/HK|TW/i.test(v.lang))
    || null;
}

export function initSpeech() {
  if (!("speechSynthesis" in window)) return;
  pickVoice();
  window.speechSynthesis.addEventListener?.("voiceschanged", pickVoice);
}

export function say(text) {
  if (!voice || !text) return;
  try {
    window.speechSynthesis.cancel();
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.voice = voice;
    utterance.lang = voice.lang;
    utterance.rate = 0.9;  // a little slower than default: easier to follow for older patients
    window.speechSynthesis.speak(utterance);
  } catch {
    // Speech is a help, never a requirement.
  }
}

export function hush() {
  if ("speechSynthesis" in window) {
    try { window.speechSynthesis.cancel(); } catch { /* nothing to stop */ }
  }
}
