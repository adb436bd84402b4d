"""Public data about who holds an address, network, AS or domain, and whom to tell.

Bulk sources (pyasn IPASN files, RIR delegated statistics, RIPE Database dumps, a national
CSIRT directory) are imported offline into `CWN_HOME/publicdata/` and searched in bulk;
live sources (RDAP, security.txt) are fetched on demand and cached.
"""
