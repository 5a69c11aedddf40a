-- The web UI lists a corp's first users by name: read off this index instead of sorting the corp.
CREATE INDEX users_by_name ON users (corp_id, name, userid);
