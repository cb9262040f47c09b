"""The β′ network lab: segments built for real with network namespaces on one machine.

Everything the lab creates lives in network namespaces named ``skm-*`` that it creates itself;
it never touches the machine's own network namespace (no link, route or firewall change
there), and ``lab down`` removes exactly the ``skm-*`` namespaces.
"""
