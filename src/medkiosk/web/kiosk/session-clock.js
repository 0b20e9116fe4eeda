// The patient's idle countdown on the page, kept in step with the service's own session clock.
//
// The service ends a session after `idle_seconds` without activity; the page counts the same time
// down locally so the patient sees it, warns `warn_seconds` before the end, and ends the session
// itself at zero. Taps restart the local count at once and reach the service through a throttle
// (at most one extend call per `throttleMs`), with a trailing call so the service's clock is never
// older than the page's: the service's session always outlives the page's countdown.

export class SessionClock {
  /**
   * @param {object} hooks
   * @param {(left: number) => void} hooks.onTick     every second while running
   * @param {(left: number) => void} hooks.onWarn     entering the last warn_seconds
   * @param {() => void} hooks.onExpire               the countdown reached zero
   * @param {() => void} hooks.onGone                 the service says the session is over
   * @param {() => Promise<object>} hooks.extend      POST …/session/extend → {session}
   * @param {() => Promise<object>} hooks.check       GET …/session → {session}
   */
  constructor(hooks, { throttleMs = 10_000, checkEveryMs = 10_000 } = {}) {
    this.hooks = hooks;
    this.throttleMs = throttleMs;
    this.checkEveryMs = checkEveryMs;
    this.running = false;
    this.timers = [];
  }

  start(session) {
    this.stop();
    this.idle = Math.max(1, Number(session.idle_seconds) || 120);
    this.warn = Math.min(Math.max(0, Number(session.warn_seconds) || 0), this.idle - 1);
    const left = Number.isFinite(session.seconds_left) && session.seconds_left > 0
      ? Math.min(session.seconds_left, this.idle) : this.idle;
    this.deadline = Date.now() + left * 1000;
    this.lastExtendAt = Date.now();  // identification itself was activity on the service's side
    this.warned = false;
    this.running = true;
    this.timers.push(setInterval(() => this.tick(), 250));
    this.timers.push(setInterval(() => this.verify(), this.checkEveryMs));
    this.tick();
  }

  stop() {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    clearTimeout(this.trailing);
    this.trailing = null;
    this.lastShown = null;
  }

  get secondsLeft() {
    return this.running ? Math.max(0, Math.ceil((this.deadline - Date.now()) / 1000)) : 0;
  }

  tick() {
    if (!this.running) return;
    const left = this.secondsLeft;
    if (left !== this.lastShown) {
      this.lastShown = left;
      this.hooks.onTick(left);
    }
    if (left <= 0) {
      this.stop();
      this.hooks.onExpire();
    } else if (!this.warned && left <= this.warn) {
      this.warned = true;
      this.hooks.onWarn(left);
    }
  }

  /** The patient touched the screen. While the warning shows only its buttons count. */
  activity() {
    if (!this.running || this.warned) return;
    this.deadline = Date.now() + this.idle * 1000;
    this.tick();
    const since = Date.now() - this.lastExtendAt;
    if (since >= this.throttleMs) {
      this.sendExtend();
    } else if (!this.trailing) {
      this.trailing = setTimeout(() => {
        this.trailing = null;
        this.sendExtend();
      }, this.throttleMs - since);
    }
  }

  /** "需要更多时间": a full idle period again, told to the service at once. */
  async moreTime() {
    if (!this.running) return;
    this.warned = false;
    this.deadline = Date.now() + this.idle * 1000;
    clearTimeout(this.trailing);
    this.trailing = null;
    this.tick();
    await this.sendExtend();
  }

  async sendExtend() {
    this.lastExtendAt = Date.now();
    try {
      const body = await this.hooks.extend();
      this.adopt(body && body.session);
    } catch {
      // A failed extend is retried by the next tap; the check below notices a lost session.
    }
  }

  async verify() {
    if (!this.running) return;
    try {
      const body = await this.hooks.check();
      this.adopt(body && body.session);
    } catch {
      // The agent or service may be briefly unreachable; the local countdown still protects.
    }
  }

  /** Take the service's view: no session means it is over; less time left (hard limit) wins. */
  adopt(session) {
    if (!this.running) return;
    if (!session) {
      this.stop();
      this.hooks.onGone();
      return;
    }
    // A pending trailing extend will move the service's clock forward: nothing to learn yet.
    if (this.trailing) return;
    const serviceLeft = Number(session.seconds_left);
    if (Number.isFinite(serviceLeft) && serviceLeft + 2 < this.secondsLeft) {
      this.deadline = Date.now() + serviceLeft * 1000;
      this.tick();
    }
  }
}
