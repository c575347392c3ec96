"""English country names (and a few common other spellings) to ISO 3166-1 alpha-2 codes, for the
sentence parser: "customers in Hungary" -> country = HU."""

from customers.countries import COUNTRY_CODES

NAMES = {
    "afghanistan": "AF", "albania": "AL", "algeria": "DZ", "andorra": "AD", "angola": "AO",
    "argentina": "AR", "armenia": "AM", "australia": "AU", "austria": "AT", "azerbaijan": "AZ",
    "bahrain": "BH", "bangladesh": "BD", "belarus": "BY", "belgium": "BE", "bolivia": "BO",
    "bosnia": "BA", "bosnia and herzegovina": "BA", "brazil": "BR", "bulgaria": "BG", "cambodia": "KH",
    "cameroon": "CM", "canada": "CA", "chile": "CL", "china": "CN", "colombia": "CO",
    "costa rica": "CR", "croatia": "HR", "cuba": "CU", "cyprus": "CY", "czechia": "CZ",
    "czech republic": "CZ", "denmark": "DK", "dominican republic": "DO", "ecuador": "EC", "egypt": "EG",
    "estonia": "EE", "ethiopia": "ET", "finland": "FI", "france": "FR", "georgia": "GE", "germany": "DE",
    "ghana": "GH", "greece": "GR", "guatemala": "GT", "hong kong": "HK", "hungary": "HU", "iceland": "IS",
    "india": "IN", "indonesia": "ID", "iran": "IR", "iraq": "IQ", "ireland": "IE", "israel": "IL",
    "italy": "IT", "jamaica": "JM", "japan": "JP", "jordan": "JO", "kazakhstan": "KZ", "kenya": "KE",
    "kosovo": "XK", "kuwait": "KW", "latvia": "LV", "lebanon": "LB", "liechtenstein": "LI",
    "lithuania": "LT", "luxembourg": "LU", "malaysia": "MY", "malta": "MT", "mexico": "MX",
    "moldova": "MD", "monaco": "MC", "montenegro": "ME", "morocco": "MA", "netherlands": "NL",
    "the netherlands": "NL", "holland": "NL", "new zealand": "NZ", "nigeria": "NG",
    "north macedonia": "MK", "macedonia": "MK", "norway": "NO", "pakistan": "PK", "peru": "PE",
    "philippines": "PH", "poland": "PL", "portugal": "PT", "qatar": "QA", "romania": "RO", "russia": "RU",
    "saudi arabia": "SA", "serbia": "RS", "singapore": "SG", "slovakia": "SK", "slovenia": "SI",
    "south africa": "ZA", "south korea": "KR", "korea": "KR", "spain": "ES", "sri lanka": "LK",
    "sweden": "SE", "switzerland": "CH", "taiwan": "TW", "thailand": "TH", "tunisia": "TN",
    "turkey": "TR", "türkiye": "TR", "ukraine": "UA", "united arab emirates": "AE", "uae": "AE",
    "united kingdom": "GB", "uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "united states": "US", "united states of america": "US",
    "usa": "US", "america": "US", "uruguay": "UY", "uzbekistan": "UZ", "venezuela": "VE",
    "vietnam": "VN", "viet nam": "VN",
}  # fmt: skip


def country_code(text, *, names_only=False):
    """The code of a country name ("Hungary", "the Netherlands") or of a code written as one ("HU");
    None when it is neither. Lower-case two-letter words are never codes ("at", "in" are words)."""
    text = (text or "").strip()
    code = NAMES.get(text.lower())
    if code is not None:
        return code
    if not names_only and len(text) == 2 and text.isupper() and text in COUNTRY_CODES:
        return text
    return None
