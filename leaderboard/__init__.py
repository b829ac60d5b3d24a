"""tvbench leaderboard: entries on disk, submissions, statistics, tables, HTML and citations."""
