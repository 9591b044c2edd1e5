"""Chinese templates for the demo data set: name characters, value pools and document domains.

Pure data, read by `ragtune.demo.dataset`; same layout and value specs as `ragtune.demo.templates_en`
(see there). Values render the Chinese way: "year" -> "1874年", "num 20 3600 米" -> "312米",
"date" -> "3月14日", "place" -> an invented two-character word plus "市".
"""

from __future__ import annotations

from typing import Any

# Invented place and brand words are two distinct characters from this list.
WORD_CHARS = list("青澜云枫岚星溪桐霁沐苍琅湄栖汀砚泓瑶蔚岫")
SURNAMES = list("林陈周吴郑孙冯蒋沈韩杨朱秦许何吕施张孔曹严华金魏陶姜谢邹喻柏")
GIVEN_CHARS = list("晓宁怡远舟晨航若瑜珂墨笙屿言朔祺昀棠翊璟")

POOLS: dict[str, list[str]] = {
    "product": ["自行车铃", "瓷砖", "折叠梯", "羊毛毯", "台灯", "登山鞋", "铜水壶", "办公椅",
                "缝纫机", "渔线轮"],
    "research_field": ["海冰", "冰川消融", "海鸟种群", "高层大气", "洋流", "冻土", "宇宙射线",
                       "火山气体", "极光"],
    "food": ["桂花糕", "烤玉米", "糯米团", "酱鸭", "板栗饼", "荷叶饭", "葱油饼", "酒酿圆子"],
    "company_suffix": ["科技", "集团", "实业", "制造"],
    "festival_kind": ["灯会", "风筝节", "丰收节", "音乐周", "花会"],
}  # fmt: skip


def _attr(value: str, say: list[str], ask: list[str]) -> dict[str, Any]:
    return {"value": value, "say": say, "ask": ask}


DOMAINS: list[dict[str, Any]] = [
    {
        "domain": "company",
        "name": "{brand}{company_suffix}",
        "intro": ["{name}是一家以稳健经营著称的民营企业，在本地颇有名气。",
                  "{name}是一家中型制造企业，从一间小作坊逐步发展壮大。"],
        "filler": ["公司每年冬天都会赞助一场青少年象棋比赛。", "分析人士认为这家公司扩张十分谨慎。",
                   "公司的年报一直使用再生纸印刷，并寄给每一位股东。"],
        "attributes": {
            "founded": _attr("year", ["{name}成立于{value}，至今仍保持独立经营。",
                                      "{name}创办于{value}，最初只有一间租来的车间。"],
                             ["{name}是哪一年成立的？", "{name}成立于哪一年？"]),
            "founder": _attr("person", ["{name}由{value}创办。", "{name}的创始人是{value}。"],
                             ["{name}的创始人是谁？", "谁创办了{name}？"]),
            "headquarters": _attr("place", ["{name}的总部设在{value}。",
                                            "{name}总部位于{value}，办公楼由一座旧纺织厂改建而成。"],
                                  ["{name}的总部在哪里？", "{name}的总部设在哪个城市？"]),
            "employees": _attr("num 40 9000", ["{name}目前共有{value}名员工。",
                                               "据最新年报，{name}拥有员工{value}人。"],
                               ["{name}有多少名员工？", "{name}的员工人数是多少？"]),
            "product": _attr("pool product", ["{name}最畅销的产品是{value}。",
                                              "{name}以生产{value}而闻名。"],
                             ["{name}最畅销的产品是什么？", "{name}以什么产品闻名？"]),
            "ceo": _attr("person", ["{name}现任总经理是{value}。",
                                    "目前负责{name}日常经营的是总经理{value}。"],
                         ["{name}的总经理是谁？", "谁是{name}现任总经理？"]),
        },
    },
    {
        "domain": "town",
        "name": "{brand}镇",
        "intro": ["{name}是一座被果园和丘陵环绕的小镇，街道两旁是古老的石墙。",
                  "{name}是一个安静的集镇，每到夏天都会吸引许多徒步者。"],
        "filler": ["镇上的面包师以黑麦面包为傲。", "一条窄轨铁路曾把小镇与海岸连接起来。",
                   "游客常常称赞这里傍晚街道的宁静。"],
        "attributes": {
            "population": _attr("num 800 90000", ["{name}的人口约为{value}人。",
                                                  "{name}大约有{value}名居民。"],
                                ["{name}有多少人口？", "{name}有多少居民？"]),
            "mayor": _attr("person", ["{name}现任镇长是{value}。",
                                      "{value}在上次选举中当选为{name}镇长。"],
                           ["{name}的镇长是谁？", "谁是{name}的现任镇长？"]),
            "river": _attr("named 河|江", ["{value}从{name}中心穿过。", "{name}坐落在{value}岸边。"],
                           ["哪条河流经{name}？", "{name}位于哪条河边？"]),
            "founded": _attr("year", ["{name}始建于{value}。", "历史学家认为{name}建于{value}。"],
                             ["{name}是哪一年建立的？", "{name}始建于哪一年？"]),
            "elevation": _attr("num 40 2400 米", ["{name}海拔{value}。",
                                                  "{name}位于海拔{value}的高地上。"],
                               ["{name}的海拔是多少？", "{name}海拔多高？"]),
        },
    },
    {
        "domain": "research station",
        "name": "{brand}科考站",
        "intro": ["{name}是一座偏远的科学考察站，由多国科学家共同运营。",
                  "{name}是一处只能乘船或小型飞机抵达的科研基地。"],
        "filler": ["天气允许时，补给会用飞机运来。", "站里厨房烤的面包在访客中很有名。",
                   "考察站的发电机同时使用柴油和风能。"],
        "attributes": {
            "established": _attr("year", ["{name}建于{value}。", "{name}于{value}正式启用。"],
                                 ["{name}是哪一年建成的？", "{name}于哪一年启用？"]),
            "director": _attr("person", ["{name}的站长是{value}。", "{value}负责领导{name}的工作。"],
                              ["{name}的站长是谁？", "谁领导{name}？"]),
            "staff": _attr("num 8 160", ["夏季有{value}名工作人员驻扎在{name}。",
                                         "{name}共有{value}名科研和后勤人员。"],
                           ["{name}有多少名工作人员？", "{name}共有多少工作人员？"]),
            "focus": _attr("pool research_field", ["{name}的研究重点是{value}。",
                                                   "{name}的科学家主要研究{value}。"],
                           ["{name}的研究重点是什么？", "{name}的科学家主要研究什么？"]),
            "elevation": _attr("num 20 3600 米", ["{name}位于海拔{value}处。",
                                                  "{name}的海拔为{value}。"],
                               ["{name}的海拔是多少？", "{name}位于海拔多高的地方？"]),
        },
    },
    {
        "domain": "festival",
        "name": "{brand}{festival_kind}",
        "intro": ["{name}是一年一度的民间节日，吸引了各地的家庭前来参加。",
                  "{name}是一场热闹的年度活动，有音乐、小吃和游行。"],
        "filler": ["志愿者们要花好几周准备装饰。", "街头艺人常常在广场上演奏到深夜。",
                   "开幕当天，当地学校通常会提前放学。"],
        "attributes": {
            "first_held": _attr("year", ["{name}始于{value}。", "第一届{name}于{value}举办。"],
                                ["{name}是哪一年开始举办的？", "第一届{name}是哪一年举办的？"]),
            "town": _attr("place", ["{name}在{value}举行。",
                                    "每年{name}期间，{value}的街道上挤满了游客。"],
                          ["{name}在哪里举行？", "哪座城市举办{name}？"]),
            "opening_date": _attr("date", ["{name}每年{value}开幕。",
                                           "每年的{value}是{name}的开幕日。"],
                                  ["{name}每年哪天开幕？", "{name}的开幕日是哪一天？"]),
            "founder": _attr("person", ["{name}由{value}发起。",
                                        "{value}创办了{name}，希望让邻里更加亲近。"],
                             ["{name}是谁发起的？", "谁创办了{name}？"]),
            "visitors": _attr("num 500 200000", ["每年约有{value}名游客参加{name}。",
                                                 "{name}每年吸引约{value}人。"],
                              ["{name}每年吸引多少游客？", "每年有多少人参加{name}？"]),
            "dish": _attr("pool food", ["{name}的招牌美食是{value}。", "来{name}一定要尝尝{value}。"],
                          ["{name}的招牌美食是什么？", "{name}以什么美食出名？"]),
        },
    },
    {
        "domain": "scientist",
        "name": "{person}",
        "intro": ["{name}是一位以严谨著称的科学家，同事们形容其做事一丝不苟。",
                  "{name}是一位长期从事野外研究的学者，写过许多科普文章。"],
        "filler": ["其许多手稿至今保存在私人收藏中。", "一座小型纪念馆展出了这位科学家的书信和照片。",
                   "年轻学者常常专程前来请教问题。"],
        "attributes": {
            "born": _attr("year", ["{name}出生于{value}。", "{name}生于{value}，从小就对自然充满好奇。"],
                          ["{name}是哪一年出生的？", "{name}出生于哪一年？"]),
            "birthplace": _attr("place", ["{name}的家乡是{value}。", "{name}在{value}长大，那里也是其出生地。"],
                                ["{name}出生在哪里？", "{name}的家乡是哪里？"]),
            "teacher": _attr("person", ["{name}曾师从{value}。", "{name}求学期间的导师是{value}。"],
                             ["{name}的导师是谁？", "{name}曾师从何人？"]),
            "field": _attr("pool research_field", ["{name}的主要研究领域是{value}。",
                                                   "{name}一生致力于研究{value}。"],
                           ["{name}研究什么领域？", "{name}的主要研究领域是什么？"]),
            "papers": _attr("num 12 400", ["{name}一生发表了{value}篇论文。",
                                           "{name}共发表论文{value}篇。"],
                            ["{name}发表了多少篇论文？", "{name}一共发表过多少篇论文？"]),
        },
    },
]  # fmt: skip
