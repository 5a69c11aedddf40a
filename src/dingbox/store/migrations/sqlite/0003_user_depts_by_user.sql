-- A page of users (GET /api/v1/corps/{corp_id}/users, in userid order) reads its members'
-- departments as one range of this index; the primary key, led by dept_id, would scan the corp.
CREATE INDEX user_depts_by_user ON user_depts (corp_id, userid, dept_id);
