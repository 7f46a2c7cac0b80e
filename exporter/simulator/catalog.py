"""Static catalogue data for devices and faults: Appendix 1 device types, device models, device point
dictionaries and the fault/alarm kinds the simulator draws from. Pure data; imports nothing.

Sources are marked like the API digest: [doc] the portal reference in /work/shared/reference, [third-party]
names used by public client projects (not in the portal text), [sim] the simulator's own choice.
"""

from __future__ import annotations

from dataclasses import dataclass

# Appendix 1 [doc]: device_type -> (Chinese, English).
DEVICE_TYPES: dict[int, tuple[str, str]] = {
    1: ("逆变器", "Inverter"), 2: ("集装箱", "Container"), 3: ("并网点", "Grid-Connection Point"),
    4: ("汇流箱", "Combiner Box"), 5: ("环境监测仪", "Meteo Station"), 6: ("变压器", "Transformer"),
    7: ("电表", "Meter"), 8: ("UPS", "UPS"), 9: ("数据采集器", "Data Logger"), 10: ("组串", "String"),
    11: ("电站", "Plant"), 12: ("线路保护", "Circuit Protection"), 13: ("解列装置", "Splitting Device"),
    14: ("储能逆变器", "Energy Storage System"), 15: ("采集设备", "Sampling Device"), 16: ("EMU", "EMU"),
    17: ("单元", "Unit"), 18: ("温湿度传感器", "Temperature and Humidity Sensor"),
    19: ("智能配电柜", "Intelligent Power Distribution Cabinet"), 20: ("显示设备", "Display Device"),
    21: ("交流配电柜", "AC Power Distributed Cabinet"), 22: ("通信模块", "Communication Module"),
    23: ("系统BMS", "System-BMS"), 24: ("阵列BMS", "Array-BMS"), 25: ("直流-直流", "DC-DC"),
    26: ("能量管理系统", "Energy Management System"), 27: ("跟踪系统", "Tracking System"),
    28: ("风能变流器", "Wind Energy Converter"), 29: ("SVG", "SVG"), 30: ("PT柜", "PT Cabinet"),
    31: ("母线保护", "Bus Protection"), 32: ("清扫机器人", "Cleaning Device"), 33: ("直流屏", "Direct Current Cabinet"),
    34: ("公用测控", "Public Measurement and Control"), 37: ("储能变流器", "PCS"), 41: ("优化器", "Optimizer"),
    43: ("电池", "Battery"), 44: ("电池簇管理单元", "Battery Cluster Management Unit"),
    45: ("本地控制器", "Local Controller"), 51: ("充电桩", "Charger"),
    52: ("电池系统控制器", "Battery System Controller"),
    55: ("微型逆变器", "Microinverter"), 63: ("柴油发电机", "Diesel Generator"),
}
# [sim] A device type code that is not in Appendix 1, present on a few plants (lists, faults, real-time), so
# that clients meet a code they have no name for.
UNDOCUMENTED_DEVICE_TYPE = 99
UNDOCUMENTED_DEVICE_NAMES = ("其他设备", "Other Device")
# Device types the gateway accepts in getDeviceRealTimeData.
KNOWN_DEVICE_TYPES = frozenset(DEVICE_TYPES) | {UNDOCUMENTED_DEVICE_TYPE}
# "Plants, grid connection points, and units are considered virtual devices" [doc: getDeviceListByPsId].
VIRTUAL_DEVICE_TYPES = frozenset({11, 3, 17})

# Plant type names for ps_type_name (Chinese default, English for _en_US). [sim] wording; the codes are [doc].
PLANT_TYPE_NAMES: dict[int, tuple[str, str]] = {
    1: ("地面电站", "Utility Plant"), 3: ("分布式光伏", "Distributed PV Plant"),
    4: ("户用光伏", "Residential PV Plant"),
    5: ("户用储能", "Residential Energy Storage Plant"), 6: ("村级电站", "Village Plant"),
    7: ("分布式储能", "Distributed Energy Storage Plant"), 8: ("扶贫电站", "Poverty Alleviation Plant"),
    9: ("风能电站", "Wind Power Plant"), 10: ("地面储能电站", "Utility Energy Storage Plant"),
    12: ("工商业储能", "C&I Energy Storage Plant"),
}


def is_english(lang: object) -> bool:
    """The portal's default language is Simplified Chinese; the simulator answers English for every other
    language except Traditional Chinese (it has no other translations)."""
    return isinstance(lang, str) and lang not in ("", "_zh_CN", "_zh_TW")


@dataclass(frozen=True, slots=True)
class Model:
    code: str
    model_id: int
    phases: int = 3
    mppt: int = 0
    strings: int = 0
    factory: tuple[str, str] = ("阳光电源", "Sungrow")
    nominal_v: float = 0.0  # batteries: nominal voltage


# [sim] Device models: real Sungrow model names, invented ids. String monitoring only on CX/HX models.
INVERTERS_RESIDENTIAL = (
    Model("SG5.0RS", 367701, phases=1, mppt=2), Model("SG8.0RS", 367702, phases=1, mppt=2),
    Model("SG10RT", 367801, mppt=2), Model("SG15RT", 367802, mppt=2),
)
INVERTERS_CI = (Model("SG33CX", 368101, mppt=3, strings=6), Model("SG50CX", 368102, mppt=5, strings=10),
                Model("SG110CX", 368103, mppt=9, strings=18))
INVERTERS_UTILITY = (Model("SG250HX", 368301, mppt=12, strings=24), Model("SG350HX", 368302, mppt=16, strings=32),
                     Model("SG3125HV-MV", 368303, mppt=1))
ESS_RESIDENTIAL = (Model("SH10RT", 369101, mppt=2), Model("SH5.0RS", 369102, phases=1, mppt=2))
ESS_LARGE = (Model("SC1000UD-MV", 369301), Model("SC5000UD-MV", 369302))
BATTERIES_RESIDENTIAL = (Model("SBR096", 370101, nominal_v=192.0), Model("SBR128", 370102, nominal_v=256.0))
BATTERIES_LARGE = (Model("ST2752UX", 370301, nominal_v=1200.0),)
LOGGERS = (Model("WiNet-S", 371001), Model("Logger1000A", 371002), Model("EyeM4", 371003))
METERS = (Model("DTSU666", 372001, factory=("正泰", "CHINT")), Model("DTSU666-20", 372002, factory=("正泰", "CHINT")))
UNDOCUMENTED_MODELS = (Model("X-DEV-1", 379901, factory=("", "")),)

# Inverter points: ids and names from the getPVInverterRealTimeData field table [doc]; units [sim] by the
# rule "always returns the smallest unit" (W, Wh, V, A). "Appendix 10" itself is not in the reference.
INVERTER_POINTS: dict[int, tuple[str, str]] = {
    1: ("Daily Yield by Inverter", "Wh"), 2: ("Total Yield", "Wh"), 4: ("Internal Air Temperature", "℃"),
    14: ("Total DC Power", "W"), 15: ("A-B Line Voltage", "V"), 16: ("B-C Line Voltage", "V"),
    17: ("C-A Line Voltage", "V"), 18: ("Phase A Voltage", "V"), 19: ("Phase B Voltage", "V"),
    20: ("Phase C Voltage", "V"), 21: ("Phase A Current", "A"), 22: ("Phase B Current", "A"),
    23: ("Phase C Current", "A"), 24: ("Total Active Power", "W"), 25: ("Total Reactive Power", "var"),
    26: ("Total Power Factor", ""), 27: ("Grid Frequency", "Hz"), 43: ("Total Apparent Power", "VA"),
    87: ("Monthly Yield", "Wh"), 88: ("Annual Yield", "Wh"), 304: ("Device Fault Status", ""),
}
MPPT_POINTS = ((5, 6), (7, 8), (9, 10), (45, 46), (47, 48), (49, 50), (51, 52), (53, 54), (55, 56), (57, 58))
for _n, (_v, _a) in enumerate(MPPT_POINTS, 1):
    INVERTER_POINTS[_v] = (f"MPPT{_n} Voltage", "V")
    INVERTER_POINTS[_a] = (f"MPPT{_n} Current", "A")
STRING_CURRENT_POINTS = (*range(70, 86), 92, 93, *range(313, 327), 7708, 7710, 7712, 7714, 7716, 7718, 7720, 7722)
STRING_VOLTAGE_POINTS = tuple(range(96, 106))
for _n, _p in enumerate(STRING_CURRENT_POINTS, 1):
    INVERTER_POINTS[_p] = (f"String {_n} Current", "A")
for _n, _p in enumerate(STRING_VOLTAGE_POINTS, 1):
    INVERTER_POINTS[_p] = (f"String {_n} Voltage", "V")

# Energy storage system (device type 14) points [third-party: live AU plant and GoSungrow names; not in the
# portal reference]. All powers >= 0, split into import/export and charge/discharge.
ESS_POINTS: dict[int, tuple[str, str]] = {
    13119: ("Load Power", "W"), 13121: ("Feed-in Power", "W"), 13126: ("Battery Charging Power", "W"),
    13141: ("Battery Level (SOC)", "%"), 13149: ("Purchased Power", "W"), 13150: ("Battery Discharging Power", "W"),
}
# Battery (device type 43) points [third-party: several client projects agree; not in the portal reference].
BATTERY_DEVICE_POINTS: dict[int, tuple[str, str]] = {
    58601: ("Battery Voltage", "V"), 58602: ("Battery Current", "A"), 58603: ("Battery Temperature", "℃"),
    58604: ("Battery Level (SOC)", "%"), 58605: ("Battery Health (SOH)", "%"),
}


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One fault/alarm definition. `en` None: no translation, Chinese is served whatever `lang` says (the
    digest notes names may come back in Chinese with `_en_US`)."""

    ftype: int  # 1 fault, 2 alarm, 3 notice, 4 suggestion [doc]; 7 [sim] undocumented
    type_code: int
    reason: int | str  # the device's own code; several joined with "|" [doc]
    level: int  # 1 major .. 4 minor [doc]
    zh: str
    en: str | None
    desc_zh: str
    desc_en: str | None
    targets: tuple[int, ...]  # device types it occurs on; 11 = the plant itself
    grid: int = 0  # grid_connection_status: "grid-connected fault?" 0/1


# [sim] names modelled on Sungrow's; the awkward ones carry quotes, backslashes, newlines, CJK and emoji.
FAULT_KINDS: tuple[FaultKind, ...] = (
    FaultKind(1, 1, 2, 1, "电网过压", "Grid Overvoltage",
              "电网电压超过允许范围",
              "Grid voltage above the permitted range", (1, 14), 1),
    FaultKind(1, 1, 3, 1, "电网欠压", "Grid Undervoltage",
              "电网电压低于允许范围",
              "Grid voltage below the permitted range", (1, 14), 1),
    FaultKind(1, 1, 8, 2, "电网过频", "Grid Overfrequency",
              "电网频率过高",
              "Grid frequency too high", (1, 14), 1),
    FaultKind(1, 1, 10, 1, "电网停电", "Grid Power Outage",
              "检测到电网停电",
              "Grid power outage detected", (1, 14, 11), 1),
    FaultKind(1, 2, 39, 1, "绝缘阻抗异常", "Low Insulation Resistance",
              "直流侧对地绝缘阻抗过低",
              "Insulation resistance of the DC side to ground too low", (1,)),
    FaultKind(1, 2, 12, 1, "漏电流保护", "Leakage Current Protection",
              "漏电流超限",
              "Leakage current exceeded", (1, 14)),
    FaultKind(1, 3, 703, 2, "电池过温", "Battery Overtemperature",
              "电池温度过高",
              "Battery temperature too high", (43, 14)),
    FaultKind(1, 4, "532|533", 1, "系统故障", "System Fault",
              "设备内部故障，请联系售后",
              "Internal device fault, contact service", (1, 14, 43)),
    FaultKind(1, 2, 28, 2, '组串"反接" PV1\\PV2', 'PV1\\PV2 "Reverse" Connection',
              "组串极性接反",
              'Check "PV1" and "PV2" \\ polarity', (1,)),
    FaultKind(1, 2, 88, 1, "直流电弧故障 ⚡🔥", "DC Arc Fault ⚡🔥",
              "检测到直流电弧\n请立即检查",
              "DC arc detected\nInspect at once", (1,)),
    FaultKind(1, 5, 1001, 1, "电站通讯中断", "Plant Communication Interrupted",
              "电站所有设备通讯中断",
              "No device of the plant communicates", (11, 9)),
    FaultKind(2, 21, 514, 3, "风扇告警", "Fan Alarm",
              "风扇转速异常",
              "Fan speed abnormal", (1, 14)),
    FaultKind(2, 22, 532, 3, "组串电流异常", "String Current Abnormal",
              "组串电流偏低",
              "String current low", (1,)),
    FaultKind(2, 23, 120, 2, "电表通讯异常", "Meter Communication Abnormal",
              "与电表通讯失败",
              "Communication with the meter failed", (7, 14, 1)),
    FaultKind(2, 24, 1002, 2, "数据采集器离线", "Data Logger Offline",
              "数据采集器超过15分钟未上报",
              "No data from the logger for 15 minutes", (9, 11)),
    FaultKind(2, 25, 832, 2, "电池电压低", "Battery Undervoltage",
              "电池电压低于下限",
              "Battery voltage below the limit", (43, 14)),
    FaultKind(2, 21, 36, 3, "温度过高降额", None,
              "机内温度过高，降额运行",
              None, (1, 14)),
    FaultKind(2, 26, 1003, 4, "告警\n换行", "Alarm with\nnewline",
              "多行\n描述\r\n",
              "multi\nline\r\n", (1, 9, 11)),
    FaultKind(2, 23, 121, 3, '电表"L1"\\缺相', 'Meter "L1" \\ phase loss',
              'L1 "缺相"',
              'Phase "L1" missing \\ check wiring', (7, 11)),
    FaultKind(3, 31, 2001, 4, "固件可升级", "Firmware Update Available",
              "有新固件版本",
              "A newer firmware is available", (1, 9, 14)),
    FaultKind(3, 32, 2002, 4, "设备时间未同步", "Device Clock Not Synchronised",
              "设备时间与服务器相差过大",
              "Device clock differs from the server", (1, 9, 11)),
    FaultKind(3, 33, 2003, 4, "☀️ 辐照度低提示", "☀️ Low Irradiance Notice",
              "今日辐照度偏低 🌥️",
              "Low irradiance today 🌥️", (11, 1)),
    FaultKind(4, 41, 3001, 4, "建议清洗组件", "Module Cleaning Recommended",
              "发电效率下降，建议清洗组件",
              "Efficiency dropped; cleaning recommended", (1, 11)),
    FaultKind(4, 42, 3002, 4, "发电量偏低", "Low Power Generation",
              "发电量低于同区域电站",
              "Yield below nearby plants", (1, 11)),
    FaultKind(7, 71, 9001, 4, "未定义事件", "Undefined Event",
              "事件类型7",
              "Event of type 7", (1, 9, 11, 14, 43, 7, 99)),
)
FAULT_TYPE_NAMES = {1: "fault", 2: "alarm", 3: "notice", 4: "suggestion", 7: "undocumented (7)"}
