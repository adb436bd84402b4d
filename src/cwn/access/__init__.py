"""Who may do what: portal accounts, sessions, second factor, API tokens and throttling.

Kept apart from the web layer so the command line (`cwn users`, `cwn tokens`) and the
portal share one implementation of every rule.
"""
