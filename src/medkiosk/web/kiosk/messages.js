// Every Chinese text the kiosk page shows or speaks, in one place (the page's message catalog).

export const MEDIA = {
  insurance_card: { label: "医保卡", action: "插入医保卡（社保卡）", icon: "card-slot" },
  id_card: { label: "身份证", action: "放置身份证", icon: "id-reader" },
  e_certificate: { label: "医保电子凭证", action: "出示医保电子凭证二维码", icon: "scanner" },
  visit_card: { label: "就诊卡", action: "刷就诊卡", icon: "visit-card" },
};

export const T = {
  pageTitle: "自助服务",
  starting: "正在启动，请稍候…",
  startFailed: "自助机暂时无法使用，正在重试…",

  // Home
  homeWelcome: "您好，欢迎使用自助服务",
  invite: "请插入医保卡、放置身份证，或出示医保电子凭证二维码",
  inviteVisitCard: "也可以刷就诊卡",
  inviteButton: "开始办理",
  tilesHeading: "可办理的业务",
  comingSoon: "即将开放",

  // Identify
  identifyHeading: "请出示以下任意一种",
  waitingForCard: "正在等待读卡…",
  readingHint: "读卡后会自动进入，无需按任何按钮",
  forService: (name) => `读卡后将为您办理：${name}`,

  // Phone (first visit)
  phoneHeading: "首次就诊，请输入手机号码",
  phoneGreeting: (masked) => `${masked}，您好`,
  phoneDefault: "首次来院就诊需要建立档案。请用下方数字键输入您的手机号码，然后按“确定”。",
  phoneLabel: "手机号码",
  phoneInvalid: "手机号码应为以 1 开头的 11 位数字，请检查后重新输入。",
  phoneTooShort: (n) => `还差 ${n} 位数字`,
  phoneReady: "请核对号码，无误后按“确定”",
  phoneIncomplete: (n) => `手机号码是 11 位数字，还差 ${n} 位，请接着输入。`,
  phoneSubmitting: "正在建档，请稍候…",
  keyDelete: "删除",
  keyClear: "清空",
  keyConfirm: "确定",

  // Refusal
  refusedHeading: "暂时不能在本机办理",
  nextStepLabel: "请您：",
  backHome: "返回首页",

  // Menu
  menuHeading: "请选择要办理的业务",

  // Patient bar
  patientBarLabel: "当前就诊人",
  balanceLabel: "个人账户余额",
  admissionLabel: (a) => [a.department, a.ward, a.bed].filter(Boolean).join(" · "),
  ageGender: (p) => [p.gender, p.age != null ? `${p.age}岁` : ""].filter(Boolean).join(" · "),
  countdown: (s) => `${s} 秒后自动退出`,
  logout: "退出",
  noticesLabel: "温馨提示",

  // Navigation bar
  back: "返回",
  home: "首页",
  largeText: "大字模式",
  staffCall: "呼叫工作人员",

  // Dialogs
  ok: "知道了",
  close: "关闭",
  comingSoonTitle: (name) => `“${name}”即将开放`,
  comingSoonBody: "本机暂时还不能办理这项业务，我们正在抓紧开通。",
  comingSoonNext: "如需办理，请到人工窗口，或按“呼叫工作人员”请人帮忙。",
  staffCallTitle: "已呼叫工作人员",
  staffCallSending: "正在呼叫工作人员…",
  errorTitle: "抱歉，出了点问题",

  // Session clock
  warnTitle: "您还在操作吗？",
  warnBody: (s) => `为保护您的个人信息，${s} 秒后将自动退出。`,
  moreTime: "需要更多时间",
  exitNow: "退出",
  loggedOut: "已退出，感谢使用",

  // Errors
  networkError: "网络连接异常，请稍后再试。",
  networkNext: "如需帮助，请按“呼叫工作人员”。",
  genericNext: "请到人工窗口办理，或按“呼叫工作人员”。",

  // Spoken guidance
  sayIdentify: "请插入医保卡、放置身份证，或出示医保电子凭证二维码。",
  sayPhone: "首次就诊，请输入您的手机号码，然后按确定。",
  sayIdentified: (masked) => `${masked}，您好，请选择要办理的业务。`,
  sayWarn: "您还在操作吗？如需继续，请按需要更多时间。",
  sayStaffCall: "已通知工作人员，请在原地稍候。",
};

export const WEEKDAYS = ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"];

export function formatDate(d) {
  return `${d.getFullYear()}年${d.getMonth() + 1}月${d.getDate()}日 ${WEEKDAYS[d.getDay()]}`;
}

export function formatTime(d) {
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export function formatYuan(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  return `¥${n.toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

// The demo panel is a tool for staff and integrators, still in Chinese.
export const DEMO = {
  handle: "演示面板",
  title: "演示面板",
  subtitle: "演示工具：模拟读卡器、扫码器和打印机。正式环境不会出现。",
  close: "收起",
  personas: "演示人物",
  presentWith: {
    insurance_card: "插医保卡",
    id_card: "放身份证",
    e_certificate: "扫电子凭证",
    visit_card: "刷就诊卡",
  },
  peripherals: "外设状态",
  paper: "小票打印机纸张",
  paperStates: { ok: "充足", low: "将尽", out: "缺纸" },
  readers: "读卡设备",
  readerNames: {
    insurance_card_reader: "医保读卡器",
    id_card_reader: "身份证阅读器",
    qr_scanner: "扫码器",
  },
  readerOk: "正常",
  readerFault: "故障",
  printed: "最近打印",
  printedNone: "还没有打印内容",
  refresh: "刷新",
  done: (what) => `已发送：${what}`,
  failed: (msg) => `未成功：${msg}`,
  loadFailed: "演示人物加载失败",
};
