"""Place names that answer "what state" and "what country" questions: general knowledge, no question's."""

from __future__ import annotations

__all__ = ("COUNTRIES", "US_STATES")

US_STATES = frozenset(
    """Alabama Alaska Arizona Arkansas California Colorado Connecticut Delaware Florida Georgia Hawaii Idaho
    Illinois Indiana Iowa Kansas Kentucky Louisiana Maine Maryland Massachusetts Michigan Minnesota
    Mississippi Missouri Montana Nebraska Nevada Ohio Oklahoma Oregon Pennsylvania Tennessee Texas Utah
    Vermont Virginia Washington Wisconsin Wyoming""".split()
    + ["New Hampshire", "New Jersey", "New Mexico", "New York", "North Carolina", "North Dakota"]
    + ["Rhode Island", "South Carolina", "South Dakota", "West Virginia"]
)
COUNTRIES = frozenset(
    """Afghanistan Albania Algeria Andorra Angola Argentina Armenia Australia Austria Azerbaijan Bahamas
    Bahrain Bangladesh Barbados Belarus Belgium Belize Benin Bhutan Bolivia Botswana Brazil Brunei
    Bulgaria Burundi Cambodia Cameroon Canada Chad Chile China Colombia Comoros Croatia Cuba Cyprus
    Czechia Denmark Djibouti Dominica Ecuador Egypt England Eritrea Estonia Eswatini Ethiopia Fiji Finland
    France Gabon Gambia Georgia Germany Ghana Greece Grenada Guatemala Guinea Guyana Haiti Honduras
    Hungary Iceland India Indonesia Iran Iraq Ireland Israel Italy Jamaica Japan Jordan Kazakhstan Kenya
    Kiribati Kosovo Kuwait Kyrgyzstan Laos Latvia Lebanon Lesotho Liberia Libya Liechtenstein Lithuania
    Luxembourg Madagascar Malawi Malaysia Maldives Mali Malta Mauritania Mauritius Mexico Micronesia
    Moldova Monaco Mongolia Montenegro Morocco Mozambique Myanmar Namibia Nauru Nepal Netherlands
    Nicaragua Niger Nigeria Norway Oman Pakistan Palau Palestine Panama Paraguay Peru Philippines Poland
    Portugal Qatar Romania Russia Rwanda Samoa Scotland Senegal Serbia Seychelles Singapore Slovakia
    Slovenia Somalia Spain Sudan Suriname Sweden Switzerland Syria Taiwan Tajikistan Tanzania Thailand
    Togo Tonga Tunisia Turkey Turkmenistan Tuvalu Uganda Ukraine Uruguay Uzbekistan Vanuatu Venezuela
    Vietnam Wales Yemen Zambia Zimbabwe""".split()
    + ["Bosnia and Herzegovina", "Burkina Faso", "Cape Verde", "Costa Rica", "Czech Republic"]
    + ["Dominican Republic", "East Timor", "El Salvador", "Equatorial Guinea", "Ivory Coast", "New Zealand"]
    + ["North Korea", "North Macedonia", "Papua New Guinea", "Saudi Arabia", "Sierra Leone"]
    + ["Solomon Islands", "South Africa", "South Korea", "South Sudan", "Sri Lanka", "United Kingdom"]
    + ["United States", "United Arab Emirates", "Vatican City", "Soviet Union", "West Germany"]
)
