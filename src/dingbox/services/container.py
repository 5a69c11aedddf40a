"""The services of one process, built once by the app factory and handed to every adapter."""

from __future__ import annotations

from dataclasses import dataclass

from dingbox.runtime import Runtime
from dingbox.services.admin import AdminService
from dingbox.services.browse import BrowseService
from dingbox.services.inbox import InboxService
from dingbox.services.notifications import NotificationService
from dingbox.services.org import OrgService
from dingbox.services.robots import RobotService
from dingbox.services.templates import TemplateService
from dingbox.services.tokens import TokenService
from dingbox.services.ui import UiService


@dataclass
class Services:
    runtime: Runtime
    tokens: TokenService
    org: OrgService
    notifications: NotificationService
    templates: TemplateService
    inbox: InboxService
    browse: BrowseService
    admin: AdminService
    robots: RobotService
    ui: UiService

    @classmethod
    def build(cls, runtime: Runtime) -> Services:
        tokens = TokenService(runtime)
        org = OrgService(runtime)
        notifications = NotificationService(runtime)
        inbox = InboxService(runtime)
        return cls(
            runtime=runtime,
            tokens=tokens,
            org=org,
            notifications=notifications,
            templates=TemplateService(runtime, notifications),
            inbox=inbox,
            browse=BrowseService(runtime),
            admin=AdminService(runtime),
            robots=RobotService(runtime),
            ui=UiService(runtime, inbox, notifications),
        )
