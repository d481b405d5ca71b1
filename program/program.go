// Package program loads a brand's programme file (TALLY_PROGRAM, TOML): its
// name, default language and timezone, its moderators, its tasks, its
// seasons and its expiry rules. The file is validated at start; a bad key or
// value stops the start with an error that names it.
package program

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"golang.org/x/text/language"
)

//go:embed example.toml
var exampleTOML []byte

// Locales are the languages Tally speaks, as BCP 47 tags.
var Locales = []string{"en", "de", "fr", "es", "it", "pt-BR", "ru", "ar", "ja", "ko", "zh-CN", "zh-TW"}

// Program is a validated programme file.
type Program struct {
	Name          string
	DefaultLocale string
	// Timezone names the zone days, weeks and seasons turn over in;
	// Location is that zone loaded.
	Timezone string
	Location *time.Location
	// Source says where the programme came from (a path or "built-in example").
	Source string
	// Moderators are the Telegram users and Discord roles that moderate
	// (Discord's Manage Server permission counts too; adapters tell that).
	TelegramAdmins map[string]bool
	DiscordRoles   map[string]bool
	// DiscordGuilds are the programme's Discord servers: Manage Server makes a
	// moderator only there.
	DiscordGuilds map[string]bool
	// TelegramReviewChat is the Telegram chat claims that need review are
	// posted to, as a decimal id ("" when none); group ids are negative.
	TelegramReviewChat string
	// DiscordReviewChannel is the Discord channel claims that need review are
	// posted to ("" when none).
	DiscordReviewChannel string
	// DailyAwardLimit is the most points one moderator may hand out per day
	// in the programme timezone; 0 means no limit.
	DailyAwardLimit int64
	// Tasks are the programme's tasks in file order.
	Tasks []Task
	// Seasons is nil when the file has no [seasons] section.
	Seasons *Seasons
	// Expiry has Policy PolicyNone and the default SweepEvery when the file
	// has no [expiry] section.
	Expiry Expiry
}

// IsModerator reports whether the platform user, holding roles (Discord), is
// a moderator by the programme file.
func (p *Program) IsModerator(platform, userID string, roles []string) bool {
	switch platform {
	case "telegram":
		return p.TelegramAdmins[userID]
	case "discord":
		for _, r := range roles {
			if p.DiscordRoles[r] {
				return true
			}
		}
	}
	return false
}

// file mirrors the TOML layout.
type file struct {
	Program struct {
		Name          *string `toml:"name"`
		DefaultLocale *string `toml:"default_locale"`
		Timezone      *string `toml:"timezone"`
	} `toml:"program"`
	Moderation struct {
		TelegramAdminIDs []int64  `toml:"telegram_admin_ids"`
		DiscordRoleIDs   []string `toml:"discord_role_ids"`
		DiscordGuildIDs  []string `toml:"discord_guild_ids"`
		// Decoded as any so that a wrong type gets a message saying what to
		// write rather than the decoder's.
		TelegramReviewChat   any `toml:"telegram_review_chat"`
		DiscordReviewChannel any `toml:"discord_review_channel"`
		DailyAwardLimit      any `toml:"daily_award_limit"`
	} `toml:"moderation"`
	Tasks   []fileTask   `toml:"tasks"`
	Seasons *fileSeasons `toml:"seasons"`
	Expiry  *fileExpiry  `toml:"expiry"`
}

// plannedSections are in DESIGN.md but not built yet: naming them gets a
// clearer error than "unknown key".
var plannedSections = map[string]bool{}

// checkedLater reports whether k lies inside a value decoded as any and
// checked by Parse itself: the decoder reports what is inside such a value
// (a table's keys) as undecoded.
func checkedLater(k toml.Key) bool {
	if len(k) < 3 {
		return false
	}
	switch k[0] {
	case "moderation":
		return k[1] == "telegram_review_chat" || k[1] == "discord_review_channel" || k[1] == "daily_award_limit"
	case "tasks":
		return slices.Contains(taskKeys, k[1])
	case "seasons":
		return slices.Contains(seasonKeys, k[1])
	case "expiry":
		return slices.Contains(expiryKeys, k[1])
	}
	return false
}

// maxPoints is the largest number of points a value may carry, 2^53−1: JSON
// clients read integers up to it exactly.
const maxPoints = 1<<53 - 1

// Load reads the programme at path, or the built-in example when path is "".
func Load(path string) (*Program, error) {
	if path == "" {
		return Parse(exampleTOML, "built-in example")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("programme file: %w", err)
	}
	return Parse(data, path)
}

// Example returns the built-in example programme.
func Example() *Program {
	p, err := Parse(exampleTOML, "built-in example")
	if err != nil {
		panic("program: built-in example is invalid: " + err.Error())
	}
	return p
}

// Parse validates a programme file's contents; source names it in errors.
func Parse(data []byte, source string) (*Program, error) {
	var f file
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%s: line %d: %s", source, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if err := undecoded(md, data); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	p := &Program{Name: "Tally Rewards", DefaultLocale: "en", Timezone: "UTC", Source: source}
	if f.Program.Name != nil {
		name := strings.TrimSpace(*f.Program.Name)
		if name == "" || utf8.RuneCountInString(name) > 100 {
			return nil, fmt.Errorf("%s: program.name must be 1 to 100 characters", source)
		}
		p.Name = name
	}
	if f.Program.DefaultLocale != nil {
		loc, err := supportedLocale(*f.Program.DefaultLocale)
		if err != nil {
			return nil, fmt.Errorf("%s: program.default_locale: %w", source, err)
		}
		p.DefaultLocale = loc
	}
	if f.Program.Timezone != nil {
		p.Timezone = *f.Program.Timezone
	}
	// time.LoadLocation accepts "" and "Local", which depend on the machine.
	if p.Timezone == "" || p.Timezone == "Local" {
		return nil, fmt.Errorf("%s: program.timezone: give an IANA zone such as \"Europe/Berlin\" or \"UTC\"", source)
	}
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return nil, fmt.Errorf("%s: program.timezone: unknown zone %q (use an IANA name such as \"Europe/Berlin\")", source, p.Timezone)
	}
	p.Location = loc
	p.TelegramAdmins, p.DiscordRoles, p.DiscordGuilds = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for i, id := range f.Moderation.DiscordGuildIDs {
		if !snowflake.MatchString(id) {
			return nil, fmt.Errorf("%s: moderation.discord_guild_ids[%d]: %q is not a Discord server id (digits, as a string)", source, i, id)
		}
		p.DiscordGuilds[id] = true
	}
	for i, id := range f.Moderation.TelegramAdminIDs {
		if id <= 0 {
			return nil, fmt.Errorf("%s: moderation.telegram_admin_ids[%d]: %d is not a Telegram user id", source, i, id)
		}
		p.TelegramAdmins[strconv.FormatInt(id, 10)] = true
	}
	for i, id := range f.Moderation.DiscordRoleIDs {
		if !snowflake.MatchString(id) {
			return nil, fmt.Errorf("%s: moderation.discord_role_ids[%d]: %q is not a Discord role id (digits, as a string)", source, i, id)
		}
		p.DiscordRoles[id] = true
	}
	if err := p.parseReview(f.Moderation.TelegramReviewChat, f.Moderation.DiscordReviewChannel, f.Moderation.DailyAwardLimit); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	// After the timezone: task dates are days in it.
	if p.Tasks, err = parseTasks(f.Tasks, p.DefaultLocale, p.Location); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if p.Seasons, err = parseSeasons(f.Seasons, p.DefaultLocale); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if p.Expiry, err = parseExpiry(f.Expiry); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return p, nil
}

// undecoded returns an error naming the first key (by name) the programme
// file has that Tally does not know, or nil.
func undecoded(md toml.MetaData, data []byte) error {
	var un []toml.Key
	for _, k := range md.Undecoded() {
		if !checkedLater(k) {
			un = append(un, k)
		}
	}
	if len(un) == 0 {
		return nil
	}
	slices.SortFunc(un, func(a, b toml.Key) int { return strings.Compare(a.String(), b.String()) })
	k := un[0]
	if plannedSections[k[0]] {
		return fmt.Errorf("[%s] is not implemented yet in this version of Tally; remove the section", k[0])
	}
	if k[0] == "tasks" && len(k) > 1 {
		// The decoder's key has no index; find the first task that has it.
		var raw struct {
			Tasks []map[string]any `toml:"tasks"`
		}
		i := 0
		if _, err := toml.Decode(string(data), &raw); err == nil {
			i = slices.IndexFunc(raw.Tasks, func(t map[string]any) bool { _, ok := t[k[1]]; return ok })
		}
		return fmt.Errorf("unknown key %q (known in a task: %s)",
			fmt.Sprintf("tasks[%d].%s", max(i, 0), toml.Key(k[1:]).String()), strings.Join(taskKeys, ", "))
	}
	if k[0] == "seasons" && len(k) > 1 {
		return fmt.Errorf("unknown key %q (known in [seasons]: %s)", k.String(), strings.Join(seasonKeys, ", "))
	}
	if k[0] == "expiry" && len(k) > 1 {
		return fmt.Errorf("unknown key %q (known in [expiry]: %s)", k.String(), strings.Join(expiryKeys, ", "))
	}
	return fmt.Errorf("unknown key %q (known: program.name, program.default_locale, program.timezone, "+
		"moderation.telegram_admin_ids, moderation.discord_role_ids, moderation.discord_guild_ids, "+
		"moderation.telegram_review_chat, moderation.discord_review_channel, moderation.daily_award_limit, "+
		"[[tasks]], [seasons], [expiry])", k.String())
}

// parseReview checks and sets the moderation keys about reviewing claims.
func (p *Program) parseReview(chat, channel, limit any) error {
	var err error
	if p.TelegramReviewChat, err = telegramChat("moderation.telegram_review_chat", chat); err != nil {
		return err
	}
	if p.DiscordReviewChannel, err = discordChannel("moderation.discord_review_channel", channel); err != nil {
		return err
	}
	if limit != nil {
		n, ok := limit.(int64)
		if !ok || n < 1 || n > maxPoints {
			return fmt.Errorf("moderation.daily_award_limit: %s is not a number of points from 1 to %d (leave the key out for no limit)", show(limit), int64(maxPoints))
		}
		p.DailyAwardLimit = n
	}
	return nil
}

// telegramChat checks the value of key name, when given, as a Telegram chat
// id (a TOML integer, not 0) and returns it in decimal, or "" when not given.
func telegramChat(name string, v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case int64:
		if v == 0 {
			return "", fmt.Errorf("%s: 0 is not a Telegram chat id (a group's id is negative, such as -1001234567890)", name)
		}
		return strconv.FormatInt(v, 10), nil
	default:
		return "", fmt.Errorf("%s: %s is not a Telegram chat id; write the id as a number without quotes, such as -1001234567890", name, show(v))
	}
}

// discordChannel checks the value of key name, when given, as a Discord
// channel id (a snowflake written as a string) and returns it, or "" when
// not given.
func discordChannel(name string, v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		if !snowflake.MatchString(v) {
			return "", fmt.Errorf("%s: %q is not a Discord channel id (digits, as a string)", name, v)
		}
		return v, nil
	case int64:
		return "", fmt.Errorf("%s: write the channel id in quotes, as a string: \"%d\"", name, v)
	default:
		return "", fmt.Errorf("%s: %s is not a Discord channel id (digits, as a string)", name, show(v))
	}
}

// show formats a value from the file for an error: strings quoted.
func show(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "a list"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprint(v)
}

var snowflake = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)

// supportedLocale returns the supported tag s names, compared
// case-insensitively ("pt-br" is "pt-BR").
func supportedLocale(s string) (string, error) {
	tag, err := language.Parse(s)
	if err == nil {
		for _, l := range Locales {
			if strings.EqualFold(tag.String(), l) {
				return l, nil
			}
		}
	}
	return "", fmt.Errorf("%q is not one of the supported languages: %s", s, strings.Join(Locales, ", "))
}
