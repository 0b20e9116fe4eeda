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

// The outpatient payment screens (门诊缴费).
export const PAY = {
  // Bills
  billsHeading: "门诊缴费",
  loadingBills: "正在查询待缴费用，请稍候…",
  noBills: "您目前没有需要缴纳的门诊费用",
  noBillsNext: "如有疑问，请到人工收费窗口咨询。",
  visitsLabel: (n) => `共 ${n} 次就诊待缴费`,
  visitDoctor: (doctor) => `${doctor}医生`,
  visitItems: (n) => `${n} 项`,
  itemsLabel: "费用明细",
  total: "合计",
  selfPayBadge: "自费",
  selfPayBadgeLong: "医保不报销",
  insuranceButton: "医保结算",
  selfPayButton: "自费支付",
  selfPayItemsButton: "只缴自费项目",
  insuranceAllHint: (amount) => `其中医保不报销的 ${amount}，结算时由您自付。`,
  insuranceHint: "医保报销的部分由医保支付，您只付剩余部分。",
  insuranceAccountHint: "这些费用医保不报销；用医保结算，可先扣个人账户余额。",
  selfPayItemsHint: (amount, rest) => `只缴医保不报销的 ${amount}，不用医保卡；其余 ${rest} 下次再缴。`,
  allSelfPayHint: "不用医保，直接用手机付款。",
  noInsuranceHint: "本次没有读取医保信息，按自费支付。需要医保结算时，请退出后插医保卡或出示医保电子凭证。",
  orChoose: "或者",
  calculating: "正在计算费用，请稍候…",

  // Split
  splitHeading: "请确认支付金额",
  splitVisit: (v) => [v.department, v.doctor ? `${v.doctor}医生` : "", v.date].filter(Boolean).join(" · "),
  rowTotal: "费用合计",
  rowFund: "医保统筹支付",
  rowAccount: "个人账户支付",
  rowCash: "现金支付",
  youPay: "您需要支付",
  selfPayMode: "自费支付，不使用医保",
  methodHeading: "请选择支付方式",
  qrButton: "扫码支付",
  qrWallets: "微信 · 支付宝 · 云闪付",
  bankCard: "银行卡支付",
  bankCardSub: "借记卡 · 信用卡",
  cardInsert: "请在下方银行卡终端插卡或挥卡，并按提示输入密码",
  cardStarting: "正在连接银行卡终端，请稍候…",
  cashZero: "医保已支付全部费用，您无需再付钱，正在为您结算…",
  settling: "正在结算，请稍候…",
  channelDown: "请按“返回”后重新缴费，或到人工收费窗口办理。",

  // QR
  qrHeading: "扫码支付",
  qrAmount: "需支付",
  qrPrompt: "↑↑请手机扫码支付↑↑",
  qrHow: "打开微信、支付宝或云闪付，点“扫一扫”，对准屏幕上的二维码。",
  qrCountdown: (m, s) => `请在 ${m} 分 ${String(s).padStart(2, "0")} 秒内完成支付`,
  qrExpired: "支付时间已到，正在关闭订单…",
  codeHintTitle: "也可以出示付款码",
  codeHint: "打开手机上的付款码，对准本机的扫码器（刷电子凭证的地方）",
  cancel: "取消支付",
  waiting: "正在等待您付款…",
  codeCharging: "已读取付款码，正在扣款，请稍候…",
  codeNotTaken: "付款码暂时未能使用，未扣款",
  codeNotTakenNext: "请用手机扫描屏幕上的二维码付款，或稍后再出示付款码",
  confirmOnPhone: "请在手机上确认付款（输入支付密码）",
  processing: "已收到付款，正在结算，请稍候…",
  cancelling: "正在取消，请稍候…",
  orderNo: (no) => `订单号 ${no}`,

  // Result
  successTitle: "缴费成功",
  successLead: "请取走凭条。检查、取药请按凭条上的指引。",
  paidLabel: "本次支付",
  receiptNo: "收据号",
  invoiceNo: "电子票据号",
  invoicePending: "正在开具，稍后可在“缴费记录”中打印",
  anomalyTitle: "金额核对不一致，已为您退款",
  anomalyRefundingTitle: "金额核对不一致，正在为您退款",
  refundedTitle: "缴费未成功，已为您退款",
  refundingTitle: "缴费未成功，正在为您退款",
  closedTitle: "支付未完成，未扣款",
  failedTitle: "未能缴费",
  pendingTitle: "正在处理，请稍候…",
  paidAmount: "已支付",
  refundedAmount: "已退款",
  refundNote: "退款按原路退回您的付款账户，一般即时到账，最迟 1–3 个工作日。",
  toCashier: "请到人工收费窗口办理",
  askCashier: "如有疑问，请到人工收费窗口咨询。",
  offerSelfPay: "改为自费支付",
  offerSelfPayHint: "也可以不用医保，改为自费支付：",
  printing: "正在打印凭条，请稍候…",
  printed: "凭条已打印，请在出纸口取走",
  slipPrinted: "异常凭条已打印，请取走后到人工收费窗口",
  printAgain: "重新打印",
  invoiceA4: "打印电子票据（A4）",
  invoiceA4Again: "再打印一份电子票据",
  invoicePrinting: "正在打印…",
  invoicePrinted: "电子票据已打印，请在下方出纸口取走票据",
  invoiceLater: "可稍后在“缴费记录”中打印，或到人工窗口办理",
  invoiceLaterHere: "请稍后再试，或到人工窗口办理",
  invoiceTitle: "电子票据",
  historyButton: "缴费记录（补打电子票据）",
  historyHeading: "缴费记录",
  historyLead: "近 30 天在自助机上的缴费。需要电子票据时，按“打印电子票据（A4）”。",
  historyLoading: "正在查询缴费记录，请稍候…",
  historyNone: "近 30 天没有在自助机上的缴费记录",
  historyNoneNext: "在人工窗口的缴费，请到人工窗口打印票据。",
  historyRefunded: "已退款",
  historyPaid: "已缴费",
  historyNoInvoice: "电子票据正在开具",
  historyBack: "返回缴费",
  done: "完成",
  more: "继续缴其他费用",
  retry: "重新缴费",
  cancelledNote: "已取消支付，未扣款",

  // Spoken
  sayBills: "请核对待缴费用，然后按下方按钮缴费。",
  sayQr: "请用手机扫描屏幕上的二维码付款。",
  saySuccess: "缴费成功，请取走凭条。",
  sayInvoicePrinted: "电子票据已打印，请在下方出纸口取走票据。",
  sayProblem: (title) => `${title}。请到人工收费窗口办理。`,
};

// Exam appointments (检查预约). No insurance wording anywhere here (tender #2).
export const EXAM = {
  heading: "检查预约",
  loadingOrders: "正在查询您的检查申请，请稍候…",
  loadingSlots: "正在查询可预约的时段，请稍候…",
  ordersLead: "以下是您已缴费、需要预约的检查。",
  none: "您目前没有需要预约的检查。如有疑问，请咨询开单医生或检查科室。",
  book: "预约",
  move: "改约",
  cancel: "取消预约",
  reprintSlip: "补打预约单",
  bookedFor: "已预约：",
  elsewhere: "已在其他渠道预约，如需改约请到检查科室登记台办理。",
  changeClosed: "距检查开始已不足2小时，不能再取消或改约。",
  changeUntil: (when) => `${when} 前可取消或改约`,
  retry: "重试",
  slotsHeading: "请选择检查时间",
  moveHeading: "请选择新的检查时间",
  currently: (when) => `当前预约：${when}`,
  earliest: "最早可约",
  orChoose: "或选择其他日期和时段",
  chooseDate: "选择日期",
  remaining: (n) => `剩余 ${n} 个`,
  full: "已约满",
  noSlots: "近期没有可预约的时段，请到检查科室登记台咨询。",
  slotsHint: "点一下时段即可预约。时段为到达检查科室的时间范围。",
  bookedTitle: "预约成功",
  movedTitle: "改约成功",
  examLabel: "检查项目",
  dateLabel: "检查日期",
  windowLabel: "预约时段",
  placeLabel: "检查地点",
  prepLabel: "检查前准备",
  checkInLabel: "报到方式",
  printing: "正在打印预约单，请稍候…",
  printed: "预约单已打印，请在出纸口取走",
  printAgain: "重新打印",
  done: "完成",
  cancelHeading: "确认取消这项检查预约？",
  cancelLead: "取消后该时段将释放给其他患者，您可以随时重新预约。检查费用不受影响。",
  cancelConfirm: "确认取消",
  cancelKeep: "不取消",
  cancelledTitle: "已取消预约",
  cancelledLead: "已取消预约，检查费用不受影响。",
  backToOrders: "返回检查预约",
  sayBooked: (date, window) => `预约成功，检查时间${date}${window}，请取走预约单。`,
};

// Reprints (补打单据) and reports (报告打印) on A4.
export const DOCS = {
  docsHeading: "补打单据",
  reportsHeading: "报告打印",
  loadingDocs: "正在查询可补打的单据，请稍候…",
  loadingReports: "正在查询您的报告，请稍候…",
  docsLead: "可补打检查申请单（CT、核磁、超声、心电图）和处方底方，用 A4 纸打印，标注为复印件。",
  noDocs: "没有可补打的单据。",
  reportsLead: "已出具的检验、检查报告可在此打印；首次打印为原件，再次打印为副本。",
  noReports: "您目前没有报告。",
  print: "打印",
  printCopy: "补打副本",
  printAgain: "再打一份",
  printsLeft: (n) => `还可补打 ${n} 次`,
  limitReached: "已达到自助机打印上限，请到门诊服务中心办理",
  printing: "正在打印，请稍候…",
  printedCopy: (n) => `已打印（复印件，第 ${n} 次），请在 A4 出纸口取走`,
  printedOriginal: "报告已打印，请在 A4 出纸口取走",
  printFailed: "A4 打印未成功",
  readyAt: (when) => `${when} 出具`,
  firstPrint: "尚未打印",
  printedBefore: "已打印过，再次打印为副本",
  pending: "报告尚未出具",
  pendingUntil: (when) => `报告尚未出具，预计 ${when} 可取`,
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
  paymentCodes: "手机付款码（在扫码付款页面使用）",
  paymentCodeButtons: [
    ["ok", "出示付款码", "130012345678901234"],
    ["confirm", "需输密码", "130112345678901234"],
    ["declined", "余额不足", "130212345678901234"],
  ],
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

/** Check-in (报到). */
export const CHECKIN = {
  heading: "报到",
  loading: "正在查询您今天的挂号和检查预约…",
  lead: "请选择要报到的号或检查，按“确认报到”即可排队候诊。",
  none: "您今天没有可以报到的挂号或检查预约",
  noneNext: "如已在窗口或手机上挂号，请到分诊台或人工窗口咨询。",
  problemTitle: "暂时无法报到",
  retry: "重新查询",
  go: "确认报到",
  going: "正在报到…",
  queueNo: (no) => `${no} 号`,
  doctor: (name) => `医生：${name}`,
  window: (label, window) => (window ? `${label} ${window}` : label),
  examTag: (label) => `【${label}检查】`,
  examWindow: (window) => `预约时段 ${window}`,
  checkedIn: "已报到",
  resultTitle: "报到成功",
  yourNumber: "您的候诊号",
  position: (n) => `排第 ${n} 位`,
  ahead: (n) => (n > 0 ? `前面还有 ${n} 人` : "下一位就是您，请留意叫号"),
  called: "医生已叫您的号，请尽快到诊室就诊",
  place: (department, location) => `请到 ${department}（${location}）候诊区等候叫号`,
  rejoinedReturning: "回诊报到：已为您优先排队",
  rejoinedMissed: "过号重新报到：已按规则为您重新排队",
  already: "您已经报过到了，无需重复报到",
  leaving: (s) => `${s} 秒后自动退出，并清除您的信息`,
  finish: "完成，退出",
  say: (no, ahead) => `报到成功，您是${no}号，${ahead > 0 ? `前面还有${ahead}人` : "请留意叫号"}`,
};
