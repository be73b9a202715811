"""Runtime: the composition root and the processes (serve, socket, shell, web, worker). The only
layer that imports commands, integrations and the sandbox.
"""
