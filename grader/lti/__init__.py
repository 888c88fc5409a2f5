"""LTI 1.3 Advantage: the platform as a tool of an LMS (Canvas, Moodle, ...).

Registrations and the tool's key (:mod:`.registrations`), what a launch means here (:mod:`.launch`:
course, roles, landing page), what the platform offers for deep linking (:mod:`.content`), the
record of identities, contexts, nonces and sent scores (:mod:`.store`), and the Advantage
services on pylti1p3 (:mod:`.services`): roster sync (:mod:`.roster`, NRPS) and grades back
(:mod:`.grades`, AGS). Below :mod:`grader.hub` (whose ``auth/lti13.py`` wires the login) and
above :mod:`grader.grading` (the gradebook the scores come from); never imports the hub.
"""
