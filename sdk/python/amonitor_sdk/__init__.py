# Copyright (C) AMonitor authors
#
# The first AMonitor project's package name, kept in the source tree for
# its command: "python3 -m amonitor_sdk.example", run in sdk/python,
# starts the example target.  Programs import "amonitor".

"""The first AMonitor SDK's name: only its example command; use amonitor."""
