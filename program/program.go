// Package program loads a brand's programme file (TALLY_PROGRAM, TOML): its
// name, default language and timezone, and, as Tally grows, its tasks,
// seasons and expiry rules. The file is validated at start; a bad key or value
// stops the start with an error that names it.
package program

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
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
	} `toml:"moderation"`
}

// plannedSections are in DESIGN.md but not built yet: naming them gets a
// clearer error than "unknown key".
var plannedSections = map[string]bool{"expiry": true, "tasks": true, "seasons": true,
	"moderation.telegram_review_chat": true, "moderation.discord_review_channel": true, "moderation.daily_award_limit": true}

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
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, 0, len(un))
		for _, k := range un {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		top := strings.SplitN(keys[0], ".", 2)[0]
		if plannedSections[top] {
			return nil, fmt.Errorf("%s: [%s] is not implemented yet in this version of Tally; remove the section", source, top)
		}
		if plannedSections[keys[0]] {
			return nil, fmt.Errorf("%s: %s is not implemented yet in this version of Tally; remove it", source, keys[0])
		}
		return nil, fmt.Errorf("%s: unknown key %q (known: program.name, program.default_locale, program.timezone, "+
			"moderation.telegram_admin_ids, moderation.discord_role_ids, moderation.discord_guild_ids)", source, keys[0])
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
	return p, nil
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
