"""Access tokens (spec §1): issue for an app or a suite in a corp, renew while valid, verify.

One token store serves both API families, so a `/gettoken` token works on v1.0 and vice versa. A
token lives 7200 s of virtual-clock time; asking again while it lives returns the same token with
its validity renewed, and an expired token stays on record so it can be told apart from a made-up one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from dingbox import errors, ids
from dingbox.domain.directory import Principal
from dingbox.domain.identifiers import names_nothing
from dingbox.runtime import Runtime
from dingbox.store import token_sql

TOKEN_TTL = 7200


def same_secret(expected: str, given: str) -> bool:
    """A constant-time comparison of UTF-8 bytes: `hmac.compare_digest` refuses str beyond ASCII,
    and a secret, signature or password may hold any character a client sends."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class _Cached:
    kind: str
    principal: str
    corp_id: str
    expires_at: float


class TokenService:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._cache: dict[str, _Cached] = {}
        # bumped by every reset: a token read from the store before a reset is not cached after it
        self._epoch = 0
        runtime.on_reset.append(self.forget_all)

    def forget_all(self) -> None:
        """A reset (of this process or another) deleted every token: the store is asked again."""
        self._cache.clear()
        self._epoch += 1

    def _remember(self, token: str, cached: _Cached, epoch: int) -> None:
        if epoch == self._epoch:
            self._cache[token] = cached

    async def _issue(self, kind: str, principal: str, corp_id: str) -> IssuedToken:
        now, epoch = self.rt.clock.now(), self._epoch
        token, expires_at = await self.rt.store.write(
            token_sql.issue_token, kind, principal, corp_id, now, TOKEN_TTL, ids.access_token()
        )
        self._remember(token, _Cached(kind, principal, corp_id, expires_at), epoch)
        return IssuedToken(token, TOKEN_TTL)

    async def for_app(self, app_key: str | None, app_secret: str | None) -> IssuedToken:
        app = self.rt.directory.by_app_key.get(app_key or "")
        if app is None or not app_secret or not same_secret(app.app_secret or "", app_secret):
            raise errors.AppCredentialsInvalid()
        return await self._issue("internal", app.app_key or "", app.corp_id)

    def _check_suite(self, suite_key: str | None, suite_secret: str | None) -> str:
        secret = self.rt.directory.suites.get(suite_key or "")
        if secret is None or suite_secret is None or not same_secret(secret, suite_secret):
            raise errors.SuiteCredentialsInvalid()
        return suite_key or ""

    async def for_suite(self, suite_key: str | None, suite_secret: str | None) -> IssuedToken:
        """A suite access token: only good for asking corp tokens in the legacy form."""
        key = self._check_suite(suite_key, suite_secret)
        return await self._issue("suite", key, "")

    async def for_suite_in_corp(
        self, suite_key: str | None, suite_secret: str | None, corp_id: str
    ) -> IssuedToken:
        key = self._check_suite(suite_key, suite_secret)
        return await self._corp_token(key, corp_id)

    async def for_signed_suite(
        self,
        suite_key: str | None,
        timestamp: str | None,
        ticket: str | None,
        signature: str | None,
        corp_id: str,
    ) -> IssuedToken:
        """get_corp_token's signature form: Base64(HmacSHA256(suiteSecret, timestamp + "\\n" + ticket))."""
        secret = self.rt.directory.suites.get(suite_key or "")
        if secret is None or timestamp is None or signature is None:
            raise errors.SuiteCredentialsInvalid()
        message = timestamp + "\n" + (ticket or "")
        expected = base64.b64encode(
            hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
        ).decode()
        if not same_secret(expected, signature):
            raise errors.SuiteCredentialsInvalid("签名校验失败")
        return await self._corp_token(suite_key or "", corp_id)

    async def for_suite_token(self, suite_token: str, corp_id: str) -> IssuedToken:
        """get_corp_token's legacy form: a suite access token names the suite."""
        cached = await self._lookup(suite_token)
        if cached.kind != "suite":
            raise errors.TokenInvalid()
        return await self._corp_token(cached.principal, corp_id)

    async def _corp_token(self, suite_key: str, corp_id: str) -> IssuedToken:
        if not self.rt.directory.suite_agents(suite_key, corp_id):
            raise errors.AuthCorpInvalid()
        return await self._issue("isv", suite_key, corp_id)

    async def _lookup(self, token: str | None) -> _Cached:
        if not token:
            raise errors.TokenMissing()
        now = self.rt.clock.now()
        cached = self._cache.get(token)
        if cached is None or cached.expires_at <= now:
            # another process may have issued or renewed it: the store is the authority
            epoch = self._epoch
            row = None if names_nothing(token) else await self.rt.store.read(token_sql.find_token, token)
            if row is None:
                raise errors.TokenInvalid()
            cached = _Cached(row[0], row[1], row[2], row[3])
            self._remember(token, cached, epoch)
        if cached.expires_at <= now:
            raise errors.TokenExpired()
        return cached

    async def authenticate(self, token: str | None) -> Principal:
        """The app or suite a token speaks for; the three token errors otherwise."""
        cached = await self._lookup(token)
        if cached.kind == "suite":
            raise errors.TokenInvalid()
        principal = self.rt.directory.principal(cached.kind, cached.principal, cached.corp_id)
        if principal is None:  # the org was replaced and the app is gone
            raise errors.TokenInvalid()
        return principal
