package bot

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/tasks"
)

// boardSize is how many places /leaderboard shows.
const boardSize = 10

var medals = []string{"🥇", "🥈", "🥉"}

func (r *Router) useSeasons() {
	r.Register(Command{Name: "season", Desc: "cmd_season", Usage: "/season [join|leave]", Run: season,
		Options: []Option{{Name: "action", Desc: "opt_season_action", Choices: []string{"join", "leave"}}}})
	r.Register(Command{Name: "leaderboard", Desc: "cmd_leaderboard", Usage: "/leaderboard", Run: leaderboard})
}

// seasonName is a season's name in l: the programme's, else "Season n".
func (r *Router) seasonName(s tasks.Season, l *locales.Localizer) string {
	if n := r.prog.Seasons.NameIn(l.Code(), r.prog.DefaultLocale, s.Number); n != "" {
		return n
	}
	return l.T("season_default_name", map[string]any{"Number": l.Number(s.Number)})
}

// escapeName makes a display name safe to show on a platform: Discord reads
// Markdown in messages and embeds; Telegram messages go out as plain text.
func escapeName(platform, name string) string {
	name = clipName(name)
	if platform != "discord" {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		if strings.ContainsRune("\\*_~`|>[]()#-:<@", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// timeLeft says how long until end in days, hours or minutes.
func timeLeft(l *locales.Localizer, now, end time.Time) string {
	d := end.Sub(now)
	switch {
	case d >= 48*time.Hour:
		n := int64(d / (24 * time.Hour))
		return l.N("season_days_left", n, map[string]any{"Count": l.Number(n)})
	case d >= 2*time.Hour:
		n := int64(d / time.Hour)
		return l.N("season_hours_left", n, map[string]any{"Count": l.Number(n)})
	}
	n := max(int64(d/time.Minute), 1)
	return l.N("season_minutes_left", n, map[string]any{"Count": l.Number(n)})
}

func season(ctx context.Context, c *Call) (Reply, error) {
	svc := c.router.tasks
	if len(c.Args) > 1 {
		return Reply{Text: c.L.T("season_usage", nil), Private: true}, nil
	}
	if len(c.Args) == 1 {
		switch strings.ToLower(c.Args[0]) {
		case "join":
			already, err := svc.Join(ctx, c.Member.ID)
			if err != nil {
				return Reply{}, err
			}
			if already {
				if s, _ := svc.CurrentSeason(ctx); s.AutoJoin {
					return Reply{Text: c.L.T("season_everyone", nil), Private: true}, nil
				}
				return Reply{Text: c.L.T("season_already_joined", nil), Private: true}, nil
			}
			return Reply{Text: c.L.T("season_joined", nil), Private: true}, nil
		case "leave":
			wasIn, err := svc.Leave(ctx, c.Member.ID)
			if tally.ErrorCode(err) == tally.EINVALID {
				return Reply{Text: c.L.T("season_everyone", nil), Private: true}, nil
			}
			if err != nil {
				return Reply{}, err
			}
			if !wasIn {
				return Reply{Text: c.L.T("season_not_in", nil), Private: true}, nil
			}
			return Reply{Text: c.L.T("season_left_done", nil), Private: true}, nil
		}
		return Reply{Text: c.L.T("season_usage", nil), Private: true}, nil
	}
	s, err := svc.CurrentSeason(ctx)
	if err != nil {
		return Reply{}, err
	}
	loc := c.router.prog.Location
	name := c.router.seasonName(s, c.L)
	var lines []string
	if s.EndsAt != nil {
		lines = append(lines, c.L.T("season_dates", map[string]any{"Name": name, "Start": c.L.Date(s.StartsAt, loc),
			"End": c.L.DateTime(*s.EndsAt, loc)})+" · "+timeLeft(c.L, svc.Now(), *s.EndsAt))
	} else {
		lines = append(lines, c.L.T("season_dates_open", map[string]any{"Name": name, "Start": c.L.Date(s.StartsAt, loc)}))
	}
	joined, err := svc.Joined(ctx, c.Member.ID)
	if err != nil {
		return Reply{}, err
	}
	if !joined {
		lines = append(lines, c.L.T("season_not_joined", nil))
	} else {
		board, err := svc.Leaderboard(ctx, s, 1, c.Member.ID)
		if err != nil {
			return Reply{}, err
		}
		if board.Own != nil {
			lines = append(lines, c.L.N("season_you", board.Own.Score, map[string]any{"Score": c.L.Number(board.Own.Score),
				"Rank": c.L.Number(board.Own.Rank)}))
		} else {
			lines = append(lines, c.L.T("season_you_unranked", nil))
		}
	}
	return Reply{Text: strings.Join(lines, "\n"), Private: true}, nil
}

func leaderboard(ctx context.Context, c *Call) (Reply, error) {
	if len(c.Args) > 0 {
		return Reply{}, errUsage
	}
	svc := c.router.tasks
	s, err := svc.CurrentSeason(ctx)
	if err != nil {
		return Reply{}, err
	}
	board, err := svc.Leaderboard(ctx, s, boardSize, c.Member.ID)
	if err != nil {
		return Reply{}, err
	}
	title := c.L.T("leaderboard_title", map[string]any{"Name": c.router.seasonName(s, c.L)})
	if len(board.Entries) == 0 {
		return Reply{Text: title + "\n" + c.L.T("leaderboard_empty", nil)}, nil
	}
	names, err := c.router.names(ctx, board.Entries)
	if err != nil {
		return Reply{}, err
	}
	lines := c.router.podium(c.L, c.User.Platform, board.Entries, names)
	footer := ""
	if own := board.Own; own != nil && own.Rank > int64(len(board.Entries)) {
		footer = c.L.N("leaderboard_you", own.Score, map[string]any{"Rank": c.L.Number(own.Rank), "Score": c.L.Number(own.Score)})
	}
	text := title + "\n" + strings.Join(lines, "\n")
	if footer != "" {
		text += "\n\n" + footer
	}
	return Reply{Text: text, Embed: &Embed{Title: title, Description: strings.Join(lines, "\n"), Footer: footer}}, nil
}

// names reads the display names of the members of some places.
func (r *Router) names(ctx context.Context, places []tasks.Standing) (map[int64]string, error) {
	ids := make([]int64, len(places))
	for i, p := range places {
		ids[i] = p.Member
	}
	members, err := r.ledger.Describe(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]string, len(members))
	for id, m := range members {
		out[id] = m.Name
		if out[id] == "" { // a member only the admin API knows has no name
			out[id] = "#" + strconv.FormatInt(id, 10)
		}
	}
	return out, nil
}

// podium renders places with medals for the first three.
func (r *Router) podium(l *locales.Localizer, platform string, places []tasks.Standing, names map[int64]string) []string {
	lines := make([]string, len(places))
	for i, p := range places {
		place := l.Number(p.Rank) + "."
		if p.Rank <= int64(len(medals)) {
			place = medals[p.Rank-1]
		}
		lines[i] = l.N("leaderboard_line", p.Score, map[string]any{"Place": place, "Member": escapeName(platform, names[p.Member]),
			"Score": l.Number(p.Score)})
	}
	return lines
}

// renderSeason renders the messages a season's close sends.
func (r *Router) renderSeason(ctx context.Context, m tasks.Message, l *locales.Localizer) (Outgoing, error) {
	out := Outgoing{UserID: m.UserID, ChatID: m.ChatID}
	s, err := r.tasks.GetSeason(ctx, m.Param("season"))
	if err != nil {
		return Outgoing{}, err
	}
	name := r.seasonName(s, l)
	if m.Kind == tasks.KindSeasonPrize {
		points := m.Param("points")
		out.Text = l.N("season_prize", points, map[string]any{"Name": name, "Rank": l.Number(m.Param("rank")),
			"Points": l.Number(points), "Balance": l.Number(m.Param("balance"))})
		return out, nil
	}
	top, err := r.tasks.FinalStandings(ctx, s.ID, len(medals))
	if err != nil {
		return Outgoing{}, err
	}
	var lines []string
	if len(top) == 0 {
		lines = append(lines, l.T("season_announce_nobody", map[string]any{"Name": name}))
	} else {
		names, err := r.names(ctx, top)
		if err != nil {
			return Outgoing{}, err
		}
		lines = append(lines, l.T("season_announce", map[string]any{"Name": name}))
		lines = append(lines, r.podium(l, m.Platform, top, names)...)
	}
	if next, err := r.tasks.CurrentSeason(ctx); err == nil && next.Number > s.Number {
		id := "season_announce_next"
		if next.AutoJoin {
			id += "_auto"
		}
		lines = append(lines, "", l.T(id, map[string]any{"Next": r.seasonName(next, l)}))
	}
	out.Text = strings.Join(lines, "\n")
	return out, nil
}
