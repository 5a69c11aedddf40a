-- Inboxes are read newest first (created_at, then seq): with created_at in the key, a page is read
-- straight off the index in that order instead of sorting every message of the user. A delivery's id
-- is its task's seq shifted left, so (created_at, id) orders exactly as (created_at, seq, id).
DROP INDEX deliveries_inbox;
CREATE INDEX deliveries_inbox ON deliveries (corp_id, userid, created_at, id) WHERE outcome = 0;
