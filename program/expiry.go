package program

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Expiry policies: how points earned by members run out.
const (
	PolicyAfterEarn  = "after_earn" // each earning lives After from when it was earned
	PolicyInactivity = "inactivity" // all points expire After the member's last earning or spending
	PolicyNone       = "none"
)

// Duration is a programme-file duration: seconds, minutes, hours, days or
// calendar months. ParseDuration sets one of the two fields, never both.
type Duration struct {
	Months int           // calendar months ("18mo"); 0 when the duration is fixed
	Fixed  time.Duration // "90s", "30m", "12h", "7d" (7×24h); 0 when Months is set
}

// durationForm is a programme-file duration: a whole number and one unit.
var durationForm = regexp.MustCompile(`^([0-9]+)(mo|s|m|h|d)$`)

// fixedDay is the length of a "d": DESIGN.md counts days as fixed 24-hour
// periods, so "7d" is the same span whatever the calendar; calendar time is
// "mo".
const fixedDay = 24 * time.Hour

var fixedUnits = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": fixedDay}

// maxMonths matches the longest fixed duration, about 292 years: the most
// a time.Duration holds.
const maxMonths = 292 * 12

// ParseDuration reads "90s", "30m", "12h", "7d" or "18mo": a whole number
// above 0 and one unit, without spaces, fractions or a mix of units. A day
// is 24 hours; "mo" is calendar months. Durations longer than about 292
// years are refused.
func ParseDuration(s string) (Duration, error) {
	m := durationForm.FindStringSubmatch(s)
	if m == nil {
		hint := ""
		if n := len(s); n > 1 && (s[n-1] == 'y' || s[n-1] == 'w') && s[0] >= '0' && s[0] <= '9' {
			hint = "; a year is 12mo, a week 7d"
		}
		return Duration{}, fmt.Errorf("%q is not a duration (use e.g. 90s, 30m, 12h, 7d, 18mo%s)", s, hint)
	}
	// The form admits only digits, so the one possible error is a number
	// out of range, which is too long anyway.
	n, err := strconv.ParseInt(m[1], 10, 64)
	switch {
	case err == nil && n == 0:
		return Duration{}, fmt.Errorf("%q is not a duration: it must be longer than 0 (use e.g. 90s, 30m, 12h, 7d, 18mo)", s)
	case err != nil,
		m[2] == "mo" && n > maxMonths,
		m[2] != "mo" && n > math.MaxInt64/int64(fixedUnits[m[2]]):
		return Duration{}, fmt.Errorf("%q is too long a duration (at most about 292 years)", s)
	case m[2] == "mo":
		return Duration{Months: int(n)}, nil
	}
	return Duration{Fixed: time.Duration(n) * fixedUnits[m[2]]}, nil
}

// String writes d as the programme file does: "18mo", or a fixed duration
// in the largest unit that divides it exactly ("7d", "12h", "30m", "90s"),
// so that ParseDuration reads it back. The zero Duration is "0s"; a fixed
// duration with a fraction of a second (built in code) is written as
// time.Duration writes it, and one with both fields set (built in code) as
// "1mo+7d".
func (d Duration) String() string {
	switch {
	case d.Months != 0 && d.Fixed != 0:
		return Duration{Months: d.Months}.String() + "+" + Duration{Fixed: d.Fixed}.String()
	case d.Months != 0:
		return strconv.Itoa(d.Months) + "mo"
	case d.Fixed == 0:
		return "0s"
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{fixedDay, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d.Fixed%u.unit == 0 {
			return strconv.FormatInt(int64(d.Fixed/u.unit), 10) + u.name
		}
	}
	return d.Fixed.String()
}

// IsZero reports whether d is zero.
func (d Duration) IsZero() bool {
	return d.Months == 0 && d.Fixed == 0
}

// After returns t plus d, in loc (UTC when loc is nil). Calendar months are
// added to the date in loc: the local time of day stays (so a month across a
// DST change is not a whole number of 24 hours), and a day the month lacks
// becomes its last day, so 31 January plus 1mo is 28 February (29 in a leap
// year), as the ledger counts. Fixed durations,
// days included, are added as elapsed time: 7d is always 168 hours, and
// across a DST change lands at another local time of day.
func (d Duration) After(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if d.Months != 0 {
		t = addMonths(t, d.Months, loc)
	}
	return t.Add(d.Fixed)
}

// addMonths moves t by months on the calendar in loc, keeping the time of
// day; a day past the end of the month becomes its last day (31 January +
// 1mo is 28 February), as the ledger and Postgres count months.
func addMonths(t time.Time, months int, loc *time.Location) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(months), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(d, last), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
}

// Before returns t minus d likewise. Because months end on different days it
// is not always the inverse of After: 31 March minus 1mo is 28 February. A
// reminder's time is its expiry less its offset, counted so; Postgres counts
// it when reminders are recorded (the reminders' tests hold it to this) and
// agrees except at a local time a DST change skips or repeats, which the two
// resolve an hour apart.
func (d Duration) Before(t time.Time, loc *time.Location) time.Time {
	return Duration{Months: -d.Months, Fixed: -d.Fixed}.After(t, loc)
}

// Expiry is the [expiry] section: how points run out and when members are
// reminded. A Program from Parse always has Policy set (PolicyNone without
// the section) and SweepEvery set; in a Program built in code an empty
// Policy counts as PolicyNone.
type Expiry struct {
	// Policy is PolicyAfterEarn, PolicyInactivity or PolicyNone (the
	// default). With PolicyNone nothing expires by policy, but points an
	// admin award gives an expires_at still expire then.
	Policy string
	// After is how long points live (from their earning, or from the
	// member's last activity); more than 0 and at most 100 years. It is
	// zero with PolicyNone.
	After Duration
	// Reminders are the offsets before an expiry at which members are
	// reminded, longest first, distinct, at most 10; each is
	// shorter than After (compared from 1 January 2001 UTC: so with After
	// "1mo" a "30d" reminder passes, and for points earned in February it
	// falls before they were earned). Allowed with any policy, since admin
	// awards' expires_at expire under PolicyNone too.
	Reminders []Duration
	// SweepEvery is how often due points are looked for: 10s to 24h,
	// 1h by default.
	SweepEvery time.Duration
}

// Limits and defaults of the [expiry] section.
const (
	maxReminders      = 10
	maxExpiryYears    = 100
	defaultSweepEvery = time.Hour
	minSweepEvery     = 10 * time.Second
	maxSweepEvery     = 24 * time.Hour
)

// expiryEpoch is the instant month-based and fixed durations are compared
// from, so that the checks give the same answer on every start.
var expiryEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// fileExpiry mirrors the [expiry] section. Every value is decoded as any so
// that its checks name the key and say what to write.
type fileExpiry struct {
	Policy     any `toml:"policy"`
	After      any `toml:"after"`
	Reminders  any `toml:"reminders"`
	SweepEvery any `toml:"sweep_every"`
}

// expiryKeys are fileExpiry's keys, for checks and errors.
var expiryKeys = []string{"policy", "after", "reminders", "sweep_every"}

// parseExpiry checks the [expiry] section; f is nil when the file has none.
func parseExpiry(f *fileExpiry) (Expiry, error) {
	e := Expiry{Policy: PolicyNone, SweepEvery: defaultSweepEvery}
	if f == nil {
		return e, nil
	}
	var err error
	if e.Policy, err = oneOf("expiry.policy", f.Policy, PolicyNone, PolicyAfterEarn, PolicyInactivity); err != nil {
		return Expiry{}, err
	}
	longest := expiryEpoch.AddDate(maxExpiryYears, 0, 0)
	switch {
	case e.Policy == PolicyNone && f.After != nil:
		policy := "expiry.policy is none"
		if f.Policy == nil {
			policy = "expiry.policy is none (the default)"
		}
		return Expiry{}, fmt.Errorf("expiry.after: %s, so nothing expires by policy; set policy to after_earn or inactivity, or remove after "+
			"(points an admin award gives an expires_at expire without it)", policy)
	case e.Policy != PolicyNone && f.After == nil:
		return Expiry{}, fmt.Errorf("expiry.after is required when expiry.policy is %s; say how long points live, such as after = \"12mo\"", e.Policy)
	case f.After != nil:
		if e.After, err = duration("expiry.after", f.After, "12mo"); err != nil {
			return Expiry{}, err
		}
		if e.After.After(expiryEpoch, time.UTC).After(longest) {
			return Expiry{}, fmt.Errorf("expiry.after: %s is longer than %d years", show(f.After), maxExpiryYears)
		}
	}
	if e.Reminders, err = reminders(f.Reminders, e.After); err != nil {
		return Expiry{}, err
	}
	if f.SweepEvery != nil {
		d, err := duration("expiry.sweep_every", f.SweepEvery, "1h")
		if err != nil {
			return Expiry{}, err
		}
		if d.Months != 0 || d.Fixed < minSweepEvery || d.Fixed > maxSweepEvery {
			return Expiry{}, fmt.Errorf("expiry.sweep_every: %s is not from 10s to 24h (use seconds, minutes or hours, such as \"5m\" or \"1h\")", show(f.SweepEvery))
		}
		e.SweepEvery = d.Fixed
	}
	return e, nil
}

// duration checks the value of key name as a duration string; example is
// what to write when it is not a string.
func duration(name string, v any, example string) (Duration, error) {
	s, ok := v.(string)
	if !ok {
		return Duration{}, fmt.Errorf("%s: %s is not a duration; write it in quotes, such as %q", name, show(v), example)
	}
	d, err := ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

// reminders checks expiry.reminders, when given, against after (zero when
// the policy is none) and returns them longest first.
func reminders(v any, after Duration) ([]Duration, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expiry.reminders: %s is not a list of durations; write it such as [\"30d\", \"7d\", \"1d\"]", show(v))
	}
	if len(list) > maxReminders {
		return nil, fmt.Errorf("expiry.reminders: has %d reminders; at most %d", len(list), maxReminders)
	}
	out := make([]Duration, 0, len(list))
	for i, r := range list {
		name := fmt.Sprintf("expiry.reminders[%d]", i)
		d, err := duration(name, r, "7d")
		if err != nil {
			return nil, err
		}
		at := d.After(expiryEpoch, time.UTC)
		switch {
		case !after.IsZero() && !at.Before(after.After(expiryEpoch, time.UTC)):
			return nil, fmt.Errorf("%s: %s is not shorter than expiry.after (%s)", name, show(r), after)
		case at.After(expiryEpoch.AddDate(maxExpiryYears, 0, 0)):
			return nil, fmt.Errorf("%s: %s is longer than %d years", name, show(r), maxExpiryYears)
		}
		if j := slices.Index(out, d); j >= 0 {
			return nil, fmt.Errorf("%s: %s is the same as expiry.reminders[%d] (%s); list each reminder once", name, show(r), j, show(list[j]))
		}
		out = append(out, d)
	}
	// Longest first; a month and as many days can tie (1mo and 31d from
	// January), and months then come first.
	slices.SortStableFunc(out, func(a, b Duration) int {
		if c := b.After(expiryEpoch, time.UTC).Compare(a.After(expiryEpoch, time.UTC)); c != 0 {
			return c
		}
		return b.Months - a.Months
	})
	return out, nil
}
