"""The β′ network lab: segments built for real with network namespaces on one machine.

Everything the lab creates lives in network namespaces named ``skm-*`` that it creates itself;
it never touches the machine's own network namespace (no link, route or firewall change
there), and ``lab down`` removes exactly the lab's namespaces (``skm-router`` and
``skm-<host>`` of the topology; other ``skm-*`` namespaces are left alone).

Modules: ``topology``/``netns`` (the network), ``session``/``launch``/``state`` (up, down,
status), ``collector_proc``/``services``/``dns_service``/``http_services`` (the processes
inside), ``scenarios``/``baseline``/``tools`` (what runs in it), ``runner``/``labtest``/
``report`` (``lab attack`` and ``lab test``).
"""
