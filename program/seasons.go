package program

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Season cadences and join modes.
const (
	CadenceWeekly    = "weekly"
	CadenceMonthly   = "monthly"
	CadenceQuarterly = "quarterly"
	CadenceNone      = "none"

	JoinOptIn = "opt_in"
	JoinAuto  = "auto"
)

// MaxPrizes is the most ranks a season may pay.
const MaxPrizes = 100

// Seasons is the [seasons] section.
type Seasons struct {
	// Cadence is how long a season runs: CadenceWeekly (from Monday),
	// CadenceMonthly, CadenceQuarterly, or CadenceNone (until a moderator
	// closes it). Periods turn over in the programme timezone.
	Cadence string
	// Join is JoinOptIn (members join with "season join") or JoinAuto
	// (every member is in).
	Join string
	// Prizes are the points paid to ranks 1, 2, 3, … when a season closes;
	// each is 1 to 2^53−1, at most MaxPrizes of them, possibly none.
	Prizes []int64
	// Name maps a supported locale to the season's name, in which "{n}"
	// stands for the season's number; it has the programme's default locale,
	// or is nil when the file names no seasons.
	Name map[string]string
	// TelegramAnnounceChat is the Telegram chat a closed season's podium is
	// posted to, as a decimal id ("" when none); group ids are negative.
	TelegramAnnounceChat string
	// DiscordAnnounceChannel is the Discord channel a closed season's podium is
	// posted to ("" when none).
	DiscordAnnounceChannel string

	defaultLocale string
}

// NameIn returns the name of season number n in locale, else in fallback,
// else in the programme's default locale; "" when the file names no seasons
// (callers then use their own localized "Season {n}").
func (s *Seasons) NameIn(locale, fallback string, n int64) string {
	if s == nil {
		return ""
	}
	return strings.ReplaceAll(textIn(s.Name, locale, fallback, s.defaultLocale), "{n}", strconv.FormatInt(n, 10))
}

// Bounds returns the period of the cadence that contains t, in loc: start
// is inclusive, end exclusive. Weeks start on Monday, months on the 1st and
// quarters on the 1st of January, April, July and October, all at midnight
// in loc. For CadenceNone, start is t and end is the zero time (no end). An
// empty Cadence (a Seasons built in code) counts as monthly.
func (s *Seasons) Bounds(t time.Time, loc *time.Location) (start, end time.Time) {
	// time.Date in loc keeps midnight at midnight across DST changes, where
	// adding hours to an instant would not.
	local := t.In(loc)
	y, m, d := local.Date()
	switch s.Cadence {
	case CadenceNone:
		return t, time.Time{}
	case CadenceWeekly:
		d -= (int(local.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case CadenceQuarterly:
		m -= (m - 1) % 3
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+3, 1, 0, 0, 0, 0, loc)
	default:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc), time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
}

// fileSeasons mirrors the [seasons] section. Every value is decoded as any
// so that its checks name the key and say what to write.
type fileSeasons struct {
	Cadence                any `toml:"cadence"`
	Join                   any `toml:"join"`
	Prizes                 any `toml:"prizes"`
	Name                   any `toml:"name"`
	TelegramAnnounceChat   any `toml:"telegram_announce_chat"`
	DiscordAnnounceChannel any `toml:"discord_announce_channel"`
}

// seasonKeys are fileSeasons' keys, for checks and errors.
var seasonKeys = []string{"cadence", "join", "prizes", "name", "telegram_announce_chat", "discord_announce_channel"}

// parseSeasons checks the [seasons] section; nil when the file has none.
func parseSeasons(f *fileSeasons, defaultLocale string) (*Seasons, error) {
	if f == nil {
		return nil, nil
	}
	s := &Seasons{Cadence: CadenceMonthly, defaultLocale: defaultLocale}
	var err error
	if f.Cadence != nil {
		if s.Cadence, err = oneOf("seasons.cadence", f.Cadence, CadenceWeekly, CadenceMonthly, CadenceQuarterly, CadenceNone); err != nil {
			return nil, err
		}
	}
	if s.Join, err = oneOf("seasons.join", f.Join, JoinOptIn, JoinAuto); err != nil {
		return nil, err
	}
	if s.Prizes, err = prizes(f.Prizes); err != nil {
		return nil, err
	}
	if f.Name != nil {
		if s.Name, err = texts("seasons.name", f.Name, defaultLocale, 100, true); err != nil {
			return nil, err
		}
	}
	if s.TelegramAnnounceChat, err = telegramChat("seasons.telegram_announce_chat", f.TelegramAnnounceChat); err != nil {
		return nil, err
	}
	if s.DiscordAnnounceChannel, err = discordChannel("seasons.discord_announce_channel", f.DiscordAnnounceChannel); err != nil {
		return nil, err
	}
	return s, nil
}

// prizes checks seasons.prizes, when given: a list of at most MaxPrizes
// numbers of points.
func prizes(v any) ([]int64, error) {
	if v == nil {
		return nil, nil
	}
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []map[string]any: // [[seasons.prizes]]
		for _, m := range v {
			list = append(list, m)
		}
	default:
		return nil, fmt.Errorf("seasons.prizes: %s is not a list of points; write it such as [500, 300, 100]", show(v))
	}
	if len(list) > MaxPrizes {
		return nil, fmt.Errorf("seasons.prizes: has %d prizes; a season pays at most %d ranks", len(list), MaxPrizes)
	}
	out := make([]int64, 0, len(list))
	for i, p := range list {
		n, ok := p.(int64)
		if !ok || n < 1 || n > maxPoints {
			return nil, fmt.Errorf("seasons.prizes[%d]: %s is not a number of points from 1 to %d", i, show(p), int64(maxPoints))
		}
		out = append(out, n)
	}
	return out, nil
}
