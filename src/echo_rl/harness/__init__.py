"""The agent harness: model text → one command (:mod:`.parse`, :mod:`.warnings`), terminal output →
observation text (:mod:`.render`), and the chat template cut into token-exact pieces (:mod:`.chat`)."""
