"""Who logs in: local accounts with Argon2id hashes (:mod:`.accounts`), the authenticator that
checks them (:mod:`.local`), sign-up and invitations (:mod:`.signup`), OpenID Connect (:mod:`.oidc`)."""
