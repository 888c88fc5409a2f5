"""An instructor's page for the students of *their* course: add, invite, upload a roster, remove.

``/hub/course/<course>/students`` (``/hub/course/students`` lists the courses one manages; the nav
bar's **Students**). Who may use it: whoever holds the hub's ``groups!group=nbgrader-<course>``
scope, which :mod:`grader.hub.roles` gives to ``instructor-<course>`` (and JupyterHub's admin role
holds for every course). It is checked here, on the server, for every request: an instructor of
another course, a grader or a student gets a 403, and no one needs admin rights or a hub restart.

A course's students are the members of its hub group ``nbgrader-<course>`` (what nbgrader's
JupyterHub plugin, the exchange and the pre-spawn hook read), and rows of its nbgrader gradebook
(``update_or_create_student``: the formgrader then shows their names, not "None, None"). For each
name given (one form, or a CSV file ``name,email[,first,last]``):

- an existing account is added to the course; nothing else about it changes (a password reset is
  the accounts page's business, with its own checks);
- a name without an account gets a new local account with an unusable random password and a
  one-time link that sets the password (the reset-link mechanism of
  :mod:`grader.hub.auth.passwords`, valid ``accounts.invitation_hours``): e-mailed when the platform
  YAML configures ``mail`` and the row gives an address, otherwise shown on the page to hand over.
  A hub user without a local account is given one only if they hold no more than a student's
  rights, so the page cannot be used to take over a colleague.

Removing takes the name out of the course's group (access to its assignments ends at once; the
account stays, it may be in other courses) and out of the gradebook unless it has submissions,
whose grades are kept. Students named in the platform YAML come back at the next hub start
(``load_groups`` only adds): remove them there too.

Only with local accounts (registered by :meth:`PlatformAuthenticator.get_handlers`): under OIDC the
identity provider owns group membership.
"""

from __future__ import annotations

import csv
import io
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

from jupyterhub import orm
from tornado import web
from traitlets import Dict, Float, Integer, Unicode
from traitlets.config import Configurable

from grader.hub.auth.accounts import AccountError, new_password
from grader.hub.auth.passwords import STUDENT_GROUP_PREFIX, PlatformPage, _privileges_of_a_student_only, reset_link
from grader.hub.auth.signup import USERNAME_PATTERN

MAX_ROWS = 2000
MAX_UPLOAD_BYTES = 1024 * 1024
EMAIL_PATTERN = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"']+$")
HEADER_NAMES = {"name", "username", "user", "user name"}


class CourseOnboarding(Configurable):
    """What the page needs from the platform settings (set by :func:`update_onboarding`)."""

    courses = Dict(config=True, help="{course_id: {'title': ..., 'gradebook_url': ...}} of the hub's courses.")
    platform_title = Unicode("AI course platform", config=True)
    invitation_hours = Float(72, config=True, help="How long an invitation (set-your-password) link stays valid.")
    smtp_host = Unicode("", config=True, help="Empty: no e-mail; the page shows the links.")
    smtp_port = Integer(587, config=True)
    smtp_security = Unicode("starttls", config=True, help="starttls, ssl or none.")
    smtp_username = Unicode("", config=True)
    smtp_password = Unicode("", config=True)
    mail_from = Unicode("", config=True)

    def title(self, course_id: str) -> str:
        return self.courses.get(course_id, {}).get("title") or course_id

    def gradebook_url(self, course_id: str) -> str:
        return self.courses.get(course_id, {}).get("gradebook_url", "")


def update_onboarding(c, settings) -> None:
    """Set :class:`CourseOnboarding`'s traits from the hub's settings (local accounts only)."""
    c.CourseOnboarding.courses = {
        course.course_id: {"title": course.title, "gradebook_url": settings.course(course.course_id).gradebook_url}
        for course in settings.courses
    }
    c.CourseOnboarding.platform_title = settings.branding.title
    c.CourseOnboarding.invitation_hours = settings.invitation_hours
    mail = settings.mail
    c.CourseOnboarding.smtp_host = mail.smtp_host
    c.CourseOnboarding.smtp_port = mail.smtp_port
    c.CourseOnboarding.smtp_security = mail.security
    c.CourseOnboarding.smtp_username = mail.username
    c.CourseOnboarding.smtp_password = mail.password
    c.CourseOnboarding.mail_from = mail.sender


# --- rosters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterRow:
    """One person to add: ``line`` of the CSV file (0: the page's single form)."""

    line: int
    name: str
    email: str = ""
    first: str = ""
    last: str = ""


@dataclass
class RowResult:
    line: int
    name: str
    ok: bool
    message: str
    link: str = ""
    emailed_to: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line else ""


def _clean_text(value: str, what: str) -> str:
    value = value.strip()
    if len(value) > 100 or any(ord(char) < 32 for char in value):
        raise ValueError(f"{what} {value[:40]!r} is longer than 100 characters or holds control characters")
    return value


def check_row(line: int, cells: list[str], *, normalize=str.lower) -> RosterRow:
    """One row (``name, email[, first, last]``) checked; ValueError says what is wrong with it."""
    cells = [cell.strip() for cell in cells]
    while cells and not cells[-1]:
        cells.pop()
    if not cells:
        raise ValueError("empty row")
    if len(cells) > 4:
        raise ValueError(f"{len(cells)} columns; expected name,email[,first,last]")
    name = normalize(cells[0])
    if not USERNAME_PATTERN.match(name):
        raise ValueError(f"user name {cells[0]!r}: 1 to 64 characters, lower-case letters, digits and . _ @ -, "
                         "starting with a letter or digit")
    email = cells[1] if len(cells) > 1 else ""
    if email and not EMAIL_PATTERN.match(email):
        raise ValueError(f"e-mail address {email!r} is not valid")
    first = _clean_text(cells[2], "first name") if len(cells) > 2 else ""
    last = _clean_text(cells[3], "last name") if len(cells) > 3 else ""
    return RosterRow(line=line, name=name, email=email, first=first, last=last)


def parse_roster(text: str, *, normalize=str.lower) -> tuple[list[RosterRow], list[RowResult]]:
    """The rows of a CSV roster (``name,email[,first,last]``, an optional header line), and one
    error per bad row naming its line; a bad row never stops the others."""
    rows: list[RosterRow] = []
    errors: list[RowResult] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if not rows and not errors and not seen and cells[0].strip().lower() in HEADER_NAMES:
            continue  # the header
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(RowResult(line, "", False, f"more than {MAX_ROWS} rows: this row and the rest were not read"))
            break
        try:
            row = check_row(line, cells, normalize=normalize)
        except ValueError as error:
            errors.append(RowResult(line, cells[0].strip()[:64], False, str(error)))
            continue
        if row.name in seen:
            errors.append(RowResult(line, row.name, False, f"{row.name} is already on line {seen[row.name]}"))
            continue
        seen[row.name] = line
        rows.append(row)
    return rows, errors


# --- the gradebook -----------------------------------------------------------------------------


def gradebook_students(db_url: str, course_id: str) -> dict[str, dict]:
    """{student id: {first, last, email, submissions}} of the course's nbgrader gradebook."""
    from nbgrader.api import Gradebook  # imported when first used: the hub starts without it

    with Gradebook(db_url, course_id=course_id) as gradebook:
        return {student.id: {"first": student.first_name or "", "last": student.last_name or "",
                             "email": student.email or "", "submissions": len(student.submissions)}
                for student in gradebook.students}


def gradebook_add(db_url: str, course_id: str, rows: list[RosterRow]) -> dict[str, str]:
    """Create or update each row's student (names and e-mail given only); {name: error} of failures."""
    from nbgrader.api import Gradebook

    failures = {}
    with Gradebook(db_url, course_id=course_id) as gradebook:
        for row in rows:
            fields = {key: value for key, value in
                      (("first_name", row.first), ("last_name", row.last), ("email", row.email)) if value}
            try:
                gradebook.update_or_create_student(row.name, **fields)
            except Exception as error:  # noqa: BLE001 - reported on the row, the others go on
                gradebook.db.rollback()
                failures[row.name] = str(error)
    return failures


def gradebook_remove(db_url: str, course_id: str, name: str) -> str:
    """Remove a student without submissions from the gradebook; say what was done."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url, course_id=course_id) as gradebook:
        try:
            student = gradebook.find_student(name)
        except MissingEntry:
            return ""
        submissions = len(student.submissions)
        if submissions:
            return f"kept in the gradebook with their {submissions} submission(s) and grades"
        gradebook.remove_student(name)
        return "removed from the gradebook"


# --- e-mail ------------------------------------------------------------------------------------


def invitation_message(*, sender: str, to: str, name: str, first: str, course_title: str, platform_title: str,
                       invited_by: str, link: str, login_url: str, hours: float) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"{platform_title}: your account for {course_title}"
    message.set_content(
        f"Hello{' ' + first if first else ''},\n\n"
        f"{invited_by} added you to the course \"{course_title}\" on {platform_title}.\n\n"
        f"Your user name: {name}\n\n"
        f"Choose your password with this one-time link (valid {hours:g} hours; it works once):\n{link}\n\n"
        f"Then sign in at {login_url}\n\n"
        "If you did not expect this e-mail, ignore it: without the link nobody can use the account.\n")
    return message


def send_messages(config: CourseOnboarding, messages: list[EmailMessage]) -> dict[str, str]:
    """Send over one SMTP connection; {recipient: error} of those not sent (all, if it cannot connect)."""
    if not messages:
        return {}
    failures: dict[str, str] = {}
    try:
        if config.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=30,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=30)
        with smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            for message in messages:
                try:
                    smtp.send_message(message)
                except smtplib.SMTPException as error:
                    failures[message["To"]] = str(error)
    except (OSError, smtplib.SMTPException) as error:
        return {message["To"]: f"the mail server {config.smtp_host}:{config.smtp_port} failed: {error}"
                for message in messages if message["To"] not in failures} | failures
    return failures


# --- the pages ---------------------------------------------------------------------------------


class CourseStudentsHandler(PlatformPage):
    """``/hub/course/<course>/students``: the course's students, for its instructors."""

    def initialize(self, authenticator, onboarding: CourseOnboarding):
        super().initialize(authenticator)
        self.onboarding = onboarding

    def _group(self, course_id: str) -> orm.Group:
        """The course's student group, if the current user manages it: 403 otherwise, for every
        course alike (an outsider learns nothing about which courses exist)."""
        name = STUDENT_GROUP_PREFIX + course_id
        if not self.has_scope(f"groups!group={name}"):
            raise web.HTTPError(403, f"Only the instructors of {course_id} manage its students.")
        group = orm.Group.find(self.db, name)
        if group is None:
            raise web.HTTPError(404, f"No course {course_id} on this hub.")
        return group

    async def _page(self, course_id: str, group: orm.Group, *, status: int = 200, results=(), message: str = "") -> None:
        self.set_status(status)
        gradebook = {}
        problem = ""
        db_url = self.onboarding.gradebook_url(course_id)
        if db_url:
            try:
                gradebook = await self.in_thread(gradebook_students, db_url, course_id)
            except Exception as error:  # noqa: BLE001 - the page still lists the hub's members
                problem = f"The gradebook could not be read: {error}"
                self.log.warning("Gradebook of %s: %s", course_id, error)
        store = self.platform_auth.store
        pending = set(await self.in_thread(store.usernames, status="pending"))
        students = []
        for user in sorted(group.users, key=lambda user: user.name):
            entry = gradebook.get(user.name, {})
            full_name = " ".join(part for part in (entry.get("first"), entry.get("last")) if part)
            students.append({"name": user.name, "full_name": full_name, "email": entry.get("email", ""),
                             "pending": user.name in pending})
        self.finish(await self.render_template(
            "course_students.html", course_id=course_id, course_title=self.onboarding.title(course_id),
            students=students, results=list(results), course_message=message, gradebook_problem=problem,
            mail_enabled=bool(self.onboarding.smtp_host), invitation_hours=self.onboarding.invitation_hours,
            max_rows=MAX_ROWS))

    @web.authenticated
    async def get(self, course_id: str):
        await self._page(course_id, self._group(course_id))

    @web.authenticated
    async def post(self, course_id: str):
        group = self._group(course_id)
        action = self.get_argument("action", "")
        if action == "add":
            cells = [self.get_argument(key, "") for key in ("username", "email", "first", "last")]
            try:
                rows, errors = [check_row(0, cells, normalize=self.platform_auth.normalize_username)], []
            except ValueError as error:
                rows, errors = [], [RowResult(0, cells[0].strip()[:64], False, str(error))]
        elif action == "upload":
            text = self._uploaded_text()
            if text is None:
                return await self._page(course_id, group, status=400,
                                        message="Choose a CSV file (UTF-8, at most 1 MB) or paste its rows.")
            rows, errors = parse_roster(text, normalize=self.platform_auth.normalize_username)
            if not rows and not errors:
                return await self._page(course_id, group, status=400, message="The roster has no rows.")
        elif action == "remove":
            return await self._remove(course_id, group, self.get_argument("username", ""))
        else:
            raise web.HTTPError(400, f"unknown action {action!r}")
        results = await self._add(course_id, group, rows)
        results = sorted(results + errors, key=lambda result: result.line)
        done = sum(result.ok for result in results)
        failed = len(results) - done
        message = f"{done} done" + (f", {failed} not done (see the rows below)" if failed else "") + "."
        await self._page(course_id, group, status=400 if failed and not done else 200, results=results,
                         message=message)

    def _uploaded_text(self) -> str | None:
        files = self.request.files.get("roster_file") or []
        data = files[0]["body"] if files and files[0]["body"] else self.get_argument("roster_text", "").encode()
        if not data or len(data) > MAX_UPLOAD_BYTES:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    async def _add(self, course_id: str, group: orm.Group, rows: list[RosterRow]) -> list[RowResult]:
        me = self.current_user.name
        store = self.platform_auth.store
        hub_url = f"{self.request.protocol}://{self.request.host}"
        hours = self.onboarding.invitation_hours
        results: list[RowResult] = []
        enrolled: list[RosterRow] = []
        invitations: list[tuple[RowResult, RosterRow]] = []
        for row in rows:
            if not self.platform_auth.validate_username(row.name):
                results.append(RowResult(row.line, row.name, False, "this user name is not allowed on this hub"))
                continue
            status = await self.in_thread(store.status, row.name)
            user = self.find_user(row.name)
            link = ""
            if status is None:
                if user is not None and not _privileges_of_a_student_only(user):
                    results.append(RowResult(row.line, row.name, False, "a hub user with more than a student's "
                                             "rights and no local account: an admin must give them one"))
                    continue
                try:
                    await self.in_thread(store.create, row.name, new_password())
                    token = await self.in_thread(store.create_reset, row.name, valid_seconds=hours * 3600,
                                                 created_by=f"{me}, invitation to {course_id}")
                except AccountError as error:
                    results.append(RowResult(row.line, row.name, False, str(error)))
                    continue
                link = reset_link(hub_url=hub_url, token=token)
            user = user or self.user_from_username(row.name)
            already = group in user.orm_user.groups
            if not already:
                group.users.append(user.orm_user)
                self.db.commit()
            if link:
                result = RowResult(row.line, row.name, True, "new account, added to the course", link=link)
                invitations.append((result, row))
            elif already:
                result = RowResult(row.line, row.name, True, f"already a student of {course_id}")
            else:
                result = RowResult(row.line, row.name, True, "existing account, added to the course")
            if status == "pending":
                result.notes.append("their account still waits for an admin's approval of their sign-up")
            self.log.info("Course %s: %s %s by %s", course_id, row.name,
                          "invited" if link else "already enrolled" if already else "enrolled", me)
            results.append(result)
            enrolled.append(row)
        await self._update_gradebook(course_id, enrolled, results)
        await self._send_invitations(course_id, invitations, hub_url)
        return results

    async def _update_gradebook(self, course_id: str, rows: list[RosterRow], results: list[RowResult]) -> None:
        db_url = self.onboarding.gradebook_url(course_id)
        if not rows or not db_url:
            return
        try:
            failures = await self.in_thread(gradebook_add, db_url, course_id, rows)
        except Exception as error:  # noqa: BLE001 - the hub's membership is done; say what is not
            failures = {row.name: str(error) for row in rows}
        for result in results:
            if result.name in failures:
                result.notes.append(f"not written to the gradebook: {failures[result.name]}")

    async def _send_invitations(self, course_id: str, invitations: list[tuple[RowResult, RosterRow]],
                                hub_url: str) -> None:
        config = self.onboarding
        to_mail = [(result, row) for result, row in invitations if row.email and config.smtp_host]
        if not to_mail:
            return
        messages = [invitation_message(
            sender=config.mail_from, to=row.email, name=row.name, first=row.first,
            course_title=config.title(course_id), platform_title=config.platform_title,
            invited_by=self.current_user.name, link=result.link, login_url=f"{hub_url}{self.hub.base_url}login",
            hours=config.invitation_hours) for result, row in to_mail]
        failures = await self.in_thread(send_messages, config, messages)
        for result, row in to_mail:
            if row.email in failures:
                result.notes.append(f"the e-mail to {row.email} was not sent ({failures[row.email]}): give them "
                                    "the link yourself")
                self.log.warning("Invitation e-mail to %s for %s failed: %s", row.email, row.name, failures[row.email])
            else:
                result.emailed_to, result.link = row.email, ""

    async def _remove(self, course_id: str, group: orm.Group, username: str):
        username = self.platform_auth.normalize_username(username.strip())
        user = self.find_user(username)
        if user is None or group not in user.orm_user.groups:
            return await self._page(course_id, group, status=400,
                                    message=f"{username} is not a student of {course_id}: nothing was changed.")
        group.users.remove(user.orm_user)
        self.db.commit()
        self.log.info("Course %s: %s removed by %s", course_id, username, self.current_user.name)
        message = f"Removed {username} from {course_id}; their account stays"
        db_url = self.onboarding.gradebook_url(course_id)
        if db_url:
            try:
                done = await self.in_thread(gradebook_remove, db_url, course_id, username)
            except Exception as error:  # noqa: BLE001
                done = f"the gradebook was not changed: {error}"
            message += f"; {done}" if done else ""
        await self._page(course_id, group, message=message + ".")


class MyCoursesHandler(PlatformPage):
    """``/hub/course/students``: the courses whose students the current user manages."""

    def initialize(self, authenticator, onboarding: CourseOnboarding):
        super().initialize(authenticator)
        self.onboarding = onboarding

    @web.authenticated
    async def get(self):
        groups = self.db.query(orm.Group).filter(orm.Group.name.startswith(STUDENT_GROUP_PREFIX))
        courses = [group.name[len(STUDENT_GROUP_PREFIX):] for group in groups.order_by(orm.Group.name)
                   if self.has_scope(f"groups!group={group.name}")]
        if not courses:
            raise web.HTTPError(403, "Only instructors manage a course's students.")
        if len(courses) == 1:
            return self.redirect(f"{self.hub.base_url}course/{courses[0]}/students")
        self.finish(await self.render_template(
            "course_students.html", course_id="", courses=[(course, self.onboarding.title(course)) for course in courses]))


def onboarding_handlers(authenticator) -> list[tuple]:
    """Tornado routes (under the hub's prefix) for :meth:`PlatformAuthenticator.get_handlers`."""
    extra = {"authenticator": authenticator, "onboarding": CourseOnboarding(config=authenticator.config)}
    return [
        (r"/course/students", MyCoursesHandler, extra),
        (r"/course/([A-Za-z0-9][A-Za-z0-9._-]*)/students", CourseStudentsHandler, extra),
    ]

