#!/usr/bin/python3
"""Print the pytest node ids of the failed tests in a junit XML file (one per
line), for ci/test-integration.sh's single rerun in the nested host."""
import sys
import xml.etree.ElementTree as ET

for case in ET.parse(sys.argv[1]).iter("testcase"):
    if case.find("failure") is None and case.find("error") is None:
        continue
    module = case.get("classname", "").split(".")[-1]
    print(f"tests/integration/{module}.py::{case.get('name')}")
